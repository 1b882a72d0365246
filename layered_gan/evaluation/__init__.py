"""Evaluation: segmentation metrics, the evaluate command, baselines, benchmark readers, FID/KID, and the
reference-segmenter protocol for generated masks."""
