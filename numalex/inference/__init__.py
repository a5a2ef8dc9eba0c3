"""Batch inference over image collections: a streaming pipeline on one
machine (pipeline.py), result rows (classifier.py), output files that a
killed run can resume (output.py). numalex/distributed.py runs the same job
on a Dask cluster."""
from .classifier import Classifier, ClassifierSpec
from .pipeline import classify_files

__all__ = ["Classifier", "ClassifierSpec", "classify_files"]
