"""Every backend refuses the same bad calls with the same message
(numalex/backends/checks.py), before any kernel runs, and answers an empty
batch with an empty output of PyTorch's shape."""
import numpy as np
import pytest

from numalex import ShapeError, backends


def r(*shape):
    return np.ones(shape, np.float32)


BAD_CALLS = {
    "channels do not match": ("conv2d", (r(1, 2, 5, 5), r(4, 3, 3, 3), r(4)), {}),
    "groups do not divide": ("conv2d", (r(1, 3, 5, 5), r(4, 1, 3, 3), r(4)), {"groups": 2}),
    "bias of the wrong length": ("conv2d", (r(1, 3, 5, 5), r(4, 3, 3, 3), r(5)), {}),
    "input shorter than the window": ("conv2d", (r(1, 3, 2, 2), r(4, 3, 3, 3), r(4)), {}),
    "a 3-D input": ("max_pool2d", (r(3, 5, 5), 3, 2), {}),
    "pool padding over half the kernel": ("max_pool2d", (r(1, 1, 5, 5), 3, 1, 2), {}),
    "stride 0": ("max_pool2d", (r(1, 1, 5, 5), 3, 0), {}),
    "features do not match": ("linear", (r(2, 5), r(3, 4), r(3)), {}),
    "lrn size 0": ("lrn", (r(1, 4, 2, 2), 0, 1e-4, 0.75, 1.0), {}),
    "adaptive size 0": ("adaptive_avg_pool2d", (r(1, 1, 4, 4), (0, 2)), {}),
    "integer pixels": ("relu", (np.ones((1, 3, 4, 4), np.uint8),), {}),
    "an integer weight": ("linear", (r(2, 5), np.ones((3, 5), np.int64), r(3)), {}),
    "a list, not an array": ("max_pool2d", ([[[[1.0, 2.0], [3.0, 4.0]]]], 2, 2), {}),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_every_backend_refuses_with_the_same_message(case):
    op, args, kwargs = BAD_CALLS[case]
    messages = {}
    for name in backends.available():
        with pytest.raises((ShapeError, ValueError, TypeError)) as err:
            getattr(backends.get(name), op)(*args, **kwargs)
        messages[name] = (type(err.value), str(err.value))
    assert len(set(messages.values())) == 1, messages


EMPTY_BATCH_CALLS = {
    "conv2d, stride 1": ("conv2d", (r(0, 4, 9, 9), r(6, 4, 3, 3), r(6)), {"padding": 1}),
    "conv2d, stride 4": ("conv2d", (r(0, 3, 19, 19), r(4, 3, 11, 11), r(4)), {"stride": 4}),
    "conv2d, groups": ("conv2d", (r(0, 4, 7, 7), r(6, 2, 5, 5), r(6)), {"groups": 2}),
    "max_pool2d": ("max_pool2d", (r(0, 3, 7, 7), 3, 2), {"ceil_mode": True}),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d", (r(0, 3, 5, 5), (2, 3)), {}),
    "lrn": ("lrn", (r(0, 4, 3, 3), 5, 1e-4, 0.75, 1.0), {}),
    "relu": ("relu", (r(0, 3, 2, 2),), {}),
    "linear": ("linear", (r(0, 5), r(3, 5), r(3)), {}),
}
TORCH_NAMES = {"lrn": "local_response_norm"}       # (x, size, alpha, beta, k) there too


@pytest.mark.parametrize("case", list(EMPTY_BATCH_CALLS))
def test_an_empty_batch_gives_an_empty_output_as_in_pytorch(case):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle: "
                                                "pip install 'numalex[oracle]'")
    op, args, kwargs = EMPTY_BATCH_CALLS[case]
    torch_op = getattr(torch.nn.functional, TORCH_NAMES.get(op, op))
    torch_args = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
    expected = tuple(torch_op(*torch_args, **kwargs).shape)
    for name in backends.available():
        backend = backends.get(name)
        y = backend.to_numpy(getattr(backend, op)(*args, **kwargs))
        assert (name, y.shape, y.dtype) == (name, expected, np.float32)
