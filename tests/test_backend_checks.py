"""Every backend refuses the same bad calls with the same message
(numalex/backends/checks.py), before any kernel runs."""
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
