"""layered-gan: unsupervised object segmentation with layered generative models."""

__version__ = "0.1.0"
