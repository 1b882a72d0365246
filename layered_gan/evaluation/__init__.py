"""Evaluation: segmentation metrics, scoring masks against ground truth, baselines, benchmark readers, FID/KID,
and the reference-segmenter protocol for generated masks; their commands are in cli.py."""
