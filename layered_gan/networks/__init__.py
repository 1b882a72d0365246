"""Networks: StyleGAN2 generator and discriminator and their building blocks."""

from .stylegan2 import Discriminator, Generator, MappingNetwork, SynthesisNetwork, channel_widths

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork", "channel_widths"]
