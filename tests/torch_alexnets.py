"""AlexNet variants written directly in PyTorch, from the published
architectures (torchvision's source, Caffe's deploy.prototxt): the
independent implementations numalex is compared with. Not generated from
numalex's specs. Imported by the parity tests; needs torch.
"""
from collections import OrderedDict

import torch

nn = torch.nn


def torchvision_alexnet(channels=(64, 192, 384, 256, 256), hidden=4096, num_classes=1000):
    """torchvision.models.alexnet, written out (torchvision is not installed);
    other widths give a smaller net of the same layout."""
    c = channels
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    model.avgpool = nn.AdaptiveAvgPool2d(6)
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(c[4] * 36, hidden), nn.ReLU(), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    model.forward = lambda x: model.classifier(torch.flatten(model.avgpool(model.features(x)), 1))
    return model


def caffe_named(groups, lrn, ceil):
    """One-tower (groups=1, no LRN, floor pooling, adaptive pool) or BVLC."""
    layers = [("conv1", nn.Conv2d(3, 96, 11, 4)), ("relu1", nn.ReLU())]
    if lrn:
        layers.append(("norm1", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)))
    layers += [("pool1", nn.MaxPool2d(3, 2, ceil_mode=ceil)),
               ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)), ("relu2", nn.ReLU())]
    if lrn:
        layers.append(("norm2", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)))
    layers += [("pool2", nn.MaxPool2d(3, 2, ceil_mode=ceil)),
               ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
               ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)), ("relu4", nn.ReLU()),
               ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)), ("relu5", nn.ReLU()),
               ("pool5", nn.MaxPool2d(3, 2, ceil_mode=ceil))]
    if not lrn:
        layers.append(("avgpool", nn.AdaptiveAvgPool2d(6)))
    layers += [("flatten", nn.Flatten()), ("fc6", nn.Linear(9216, 4096)), ("relu6", nn.ReLU()),
               ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()),
               ("fc8", nn.Linear(4096, 1000))]
    return nn.Sequential(OrderedDict(layers))


TORCH_MODELS = {
    "torchvision": torchvision_alexnet,
    "original": lambda: caffe_named(groups=1, lrn=False, ceil=False),
    "bvlc": lambda: caffe_named(groups=2, lrn=True, ceil=True),
}
