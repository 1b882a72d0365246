"""Composite layers into an image (PerturbGAN eq. 1): x = (1 - m) B + m F."""


def composite(background, foreground, mask):
    return background + mask * (foreground - background)
