"""A one-tower numalex model as torch.nn layers holding the same weights
(for benchmarks that need PyTorch to run exactly numalex's layer list, such
as benchmarks/train_step.py; benchmarks/peers.py uses the independent
AlexNet of tests/torch_alexnets.py instead)."""
from __future__ import annotations

import torch


def torch_layers(model) -> "torch.nn.Sequential":
    """A one-tower numalex model as torch.nn layers holding the same weights."""
    nn, state = torch.nn, model.state_dict()
    layers = []
    for name, spec in model.layers:
        kind = type(spec).__name__
        if kind == "Conv2d":
            layer = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride,
                              spec.padding, spec.dilation, spec.groups)
        elif kind == "Linear":
            layer = nn.Linear(spec.in_features, spec.out_features)
        elif kind == "MaxPool2d":
            layer = nn.MaxPool2d(spec.kernel, spec.stride, spec.padding,
                                 ceil_mode=spec.ceil_mode)
        elif kind == "AdaptiveAvgPool2d":
            layer = nn.AdaptiveAvgPool2d(spec.out)
        elif kind == "LRN":
            layer = nn.LocalResponseNorm(spec.size, spec.alpha, spec.beta, spec.k)
        else:
            layer = {"ReLU": nn.ReLU(), "Dropout": nn.Dropout(), "Flatten": nn.Flatten()}[kind]
        if spec.param_shapes():
            layer.weight.data = torch.from_numpy(state[f"{name}.weight"].copy())
            layer.bias.data = torch.from_numpy(state[f"{name}.bias"].copy())
        layers.append(layer)
    return nn.Sequential(*layers).eval()
