"""check_input, the gate before every forward pass: shape and dtype first,
so a wrong input of any size is refused before a byte is copied, and
finiteness after the cast to float32, where large float64 values overflow."""
import tracemalloc

import numpy as np
import pytest

import numalex
from numalex import ShapeError
from numalex.model import check_input


def peak_bytes_while(run):
    """The most memory NumPy (and Python) allocated while run() ran."""
    tracemalloc.start()
    try:
        run()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("value", [1e300, -1e39, 3.5e38])
def test_float64_values_that_overflow_float32_are_refused(value):
    x = np.zeros((1, 3, 8, 8))
    x[0, 1, 2, 3] = value                    # finite in float64, +-inf in float32
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_input(x)


def test_the_largest_float32_passes():
    x = np.full((1, 3, 2, 2), np.finfo(np.float32).max, np.float64)
    assert check_input(x).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_a_huge_wrong_channel_input_is_refused_without_allocating(dtype):
    # 4 channels of 4000 x 4000, float64 or int64: a view of one value (no memory);
    # checking finiteness or converting first would allocate 64 MB to 512 MB
    x = np.broadcast_to(np.zeros((), dtype), (1, 4, 4000, 4000))
    model = numalex.alexnet("torchvision")

    def refuse():
        with pytest.raises(ShapeError, match="3 input channels"):
            model(x)

    assert peak_bytes_while(refuse) < 2**20


@pytest.mark.parametrize("where", [0, 65535, 65536, 3 * 224 * 224 - 1])
def test_a_nan_anywhere_is_found(where):
    # a single NaN is found wherever it lies: first, last, or in between
    x = np.zeros((1, 3, 224, 224), np.float32)
    x.reshape(-1)[where] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_input(x)
