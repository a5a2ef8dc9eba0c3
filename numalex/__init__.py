"""numalex: AlexNet from scratch in NumPy and Numba.

    import numalex
    model = numalex.alexnet("torchvision")        # or "original", "bvlc"
    logits = model(x, backend="numba")            # x: (N, 3, 224, 224) float32
    print(numalex.summary(model))                 # the layer table, computed
    numalex.conv_output_size(224, 11, stride=4, padding=2)   # 55
    loss, grads = model.loss_and_grads(x, labels)  # backprop, grads keyed like state_dict()
    for row in numalex.classify_files(paths, weights="alexnet-owt-7be5be79.pth"): ...
"""
from . import backends
from .alexnet import alexnet
from .backprop import cross_entropy
from .inference import classify_files
from .model import LayerRecord, Model, StateDictError
from .shapes import ShapeError, conv_output_size, size_arithmetic
from .summary import summary
from .training import SGD
from .weights import load_weights, save_weights

__version__ = "0.1.0"

__all__ = ["alexnet", "backends", "classify_files", "cross_entropy", "conv_output_size",
           "size_arithmetic", "summary",
           "load_weights", "save_weights",
           "LayerRecord", "Model", "ShapeError", "StateDictError", "__version__",
           "SGD"]
