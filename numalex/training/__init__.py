"""Training: SGD with the paper's schedule, data pipelines, the loop and checkpoints.

    numalex.SGD(model, lr=0.01).step(grads)        # numalex/training/sgd.py
    load_data("digits", 63)                        # data.py: digits or a class folder
    fit(model, optimizer, data, epochs, ...)       # loop.py
    save_checkpoint / load_checkpoint / trained_model   # checkpoint.py

`numalex train DATA` (numalex/commands/train.py) puts them together.
"""
from .sgd import SGD

__all__ = ["SGD"]
