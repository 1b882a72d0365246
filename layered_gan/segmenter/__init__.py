"""Segmenters trained on masks: the supervised reference and distillation from generated pairs."""
