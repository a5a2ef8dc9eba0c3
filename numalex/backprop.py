"""Backpropagation through a whole Model, on any backend with the backward ops.

    loss, grads = model.loss_and_grads(x, labels, backend="numpy")

1. :func:`forward_keeping_inputs` runs the layers one by one (never fused:
   each layer's backward needs that layer's own input) and keeps every
   layer's input, plus the dropout masks in training mode.
2. :func:`cross_entropy` turns the logits into the loss and its gradient.
3. :func:`backward` walks the layers in reverse: each ``OP_backward`` takes
   the gradient of the layer's output and gives that of its input (and of its
   weight and bias), which becomes the next layer's ``dy``.

The backward ops are the backend's (``numalex.backends.get(name).conv2d_backward``
...); CUDA keeps everything on the device until the gradients are copied back
at the end.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import backends
from .layers import LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .shapes import ShapeError

BACKWARD_OPS = ("conv2d_backward", "linear_backward", "max_pool2d_backward",
                "adaptive_avg_pool2d_backward", "lrn_backward", "relu_backward", "dropout",
                "dropout_backward")


def cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of `logits` against integer `labels`, and its gradient.

    logits: (N, K), labels: (N,) integers in [0, K) -> (loss, dlogits (N, K) float32).
    loss = mean over n of logsumexp(logits[n]) - logits[n, labels[n]], and
    dlogits = (softmax(logits) - onehot(labels)) / N. Subtracting each row's
    maximum first keeps exp() from overflowing (logits of 1000 are fine); the
    arithmetic runs in float64.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.floating):
        raise ShapeError(f"cross_entropy: logits must be a float array of shape "
                         f"(N, classes), got {logits.dtype} {logits.shape}")
    labels = check_labels(labels, *logits.shape)
    rows = np.arange(len(labels))
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    log_sum_exp = np.log(np.exp(shifted).sum(axis=1))                 # (N,)
    loss = float(np.mean(log_sum_exp - shifted[rows, labels]))
    dlogits = np.exp(shifted - log_sum_exp[:, None])                  # softmax
    dlogits[rows, labels] -= 1.0
    return loss, (dlogits / len(labels)).astype(np.float32)


def check_labels(labels, batch: int, classes: int) -> np.ndarray:
    """labels as an (N,) integer array in [0, classes), or a one-line error."""
    labels = np.asarray(labels)
    if labels.shape != (batch,) or not np.issubdtype(labels.dtype, np.integer):
        raise ShapeError(f"labels must be {batch} integers (one per image / row of logits), "
                         f"got {labels.dtype} array of shape {labels.shape}")
    if batch and not 0 <= labels.min() <= labels.max() < classes:
        raise ValueError(f"labels must lie in [0, {classes}), got {labels.min()} ... "
                         f"{labels.max()}")
    return labels


def backend_with_gradients(name: str):
    """The backend module `name`, or NotImplementedError if it lacks backward ops."""
    be = backends.get(name)
    missing = [op for op in BACKWARD_OPS if not hasattr(be, op)]
    if missing:
        raise NotImplementedError(f"backend {name!r} has no backward pass yet (missing "
                                  f"{', '.join(missing)}); use backend='numpy'")
    return be


def takes_need_dx(be) -> bool:
    """Can the backend's conv2d_backward skip the input gradient (need_dx=False)?"""
    return "need_dx" in inspect.signature(be.conv2d_backward).parameters


def forward_keeping_inputs(model, be, x, train: bool = False, seed=None):
    """Run x (N, C, H, W) through every layer of `model` on backend `be`.

    Returns (logits on the backend, tape): tape[i] = (input of layer i, its
    dropout mask or None). With train=True every Dropout layer drops values
    with a mask drawn from np.random.default_rng(seed); otherwise dropout is
    the identity, as at inference.
    """
    model.expected_shapes(x.shape[1:])          # a bad size fails here, naming the layer
    rng = np.random.default_rng(seed)
    h, tape = be.to_backend(x), []
    for (_, spec), params in zip(model.layers, model._layer_params(be)):
        mask = None
        if train and isinstance(spec, Dropout):
            out, mask = be.dropout(h, spec.p, rng)
        else:
            out = spec.forward(be, h, params)
        tape.append((h, mask))
        h = out
    return h, tape


def backward(model, be, tape, dlogits, need_input_grad: bool = True) -> tuple:
    """Walk the layers in reverse from dlogits (N, K) on the backend.

    Returns (dx, grads): dx the gradient of the input images (a host array,
    (N, C, H, W); None without need_input_grad, which also spares the first
    convolution its input gradient where the backend can skip it) and grads
    {state-dict key: host array}.
    """
    dy, grads = dlogits, {}
    steps = list(zip(model.layers, model._layer_params(be), tape))
    for i, ((name, spec), params, (x, mask)) in reversed(list(enumerate(steps))):
        need_dx = need_input_grad or i > 0
        dy, layer_grads = layer_backward(be, spec, dy, x, params, mask, need_dx)
        grads.update({f"{name}.{suffix}": be.to_numpy(g) for suffix, g in layer_grads.items()})
    dx = be.to_numpy(dy) if need_input_grad else None
    return dx, {key: grads[key] for key in model.param_shapes()}


def layer_backward(be, spec, dy, x, params, mask, need_dx: bool = True) -> tuple:
    """One layer's backward: dy of its output -> (dy of its input, {suffix: gradient}).
    need_dx=False lets a convolution skip its input gradient (then None) on a
    backend whose conv2d_backward takes need_dx."""
    if isinstance(spec, Conv2d):
        skip = {} if need_dx or not takes_need_dx(be) else {"need_dx": False}
        dx, dw, db = be.conv2d_backward(dy, x, params["weight"], params["bias"], spec.stride,
                                        spec.padding, spec.groups, spec.dilation, **skip)
        return dx, {"weight": dw, "bias": db}
    if isinstance(spec, Linear):
        dx, dw, db = be.linear_backward(dy, x, params["weight"], params["bias"])
        return dx, {"weight": dw, "bias": db}
    if isinstance(spec, MaxPool2d):
        return be.max_pool2d_backward(dy, x, *spec.fused_args()), {}
    if isinstance(spec, AdaptiveAvgPool2d):
        return be.adaptive_avg_pool2d_backward(dy, x, (spec.out, spec.out)), {}
    if isinstance(spec, LRN):
        return be.lrn_backward(dy, x, spec.size, spec.alpha, spec.beta, spec.k), {}
    if isinstance(spec, ReLU):
        return be.relu_backward(dy, x), {}
    if isinstance(spec, Dropout):
        return (dy if mask is None else be.dropout_backward(dy, mask, spec.p)), {}
    if isinstance(spec, Flatten):
        return dy.reshape(x.shape), {}
    raise TypeError(f"no backward pass for layer type {type(spec).__name__}")


def top_class_gradient(model, x, backend: str = "numpy") -> tuple:
    """Each image's top class, its logit, and that logit's gradient with respect
    to the input pixels (a saliency map, Simonyan et al. 2013).

    x: (N, C, H, W), already checked -> (classes (N,), logits (N,), dx (N, C, H, W)).
    The backward walk starts from a one-hot dlogits instead of a loss.
    """
    be = backend_with_gradients(backend)
    logits, tape = forward_keeping_inputs(model, be, x)
    logits = be.to_numpy(logits)
    rows, top = np.arange(len(logits)), logits.argmax(axis=1)
    one_hot = np.zeros_like(logits)
    one_hot[rows, top] = 1.0
    dx, _ = backward(model, be, tape, be.to_backend(one_hot))
    return top, logits[rows, top], dx


def loss_and_grads(model, x, labels, backend: str = "numpy", train: bool = False,
                   seed=None) -> tuple[float, dict]:
    """(mean cross-entropy loss, {state-dict key: gradient}) for images x
    (N, C, H, W), already checked, and labels (N,). See Model.loss_and_grads."""
    check_labels(labels, x.shape[0], model.num_classes)      # before any work
    be = backend_with_gradients(backend)
    logits, tape = forward_keeping_inputs(model, be, x, train, seed)
    loss, dlogits = cross_entropy(be.to_numpy(logits), labels)
    _, grads = backward(model, be, tape, be.to_backend(dlogits), need_input_grad=False)
    return loss, grads
