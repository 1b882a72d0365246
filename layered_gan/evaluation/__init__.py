"""Evaluation: segmentation metrics and baseline masks."""
