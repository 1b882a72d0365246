"""Latent segmenting directions in a pretrained StyleGAN2 generator.

Two methods read masks off a latent shift that lightens the object and darkens
the background (or the reverse):

- Voynov et al., "Big GANs Are Watching You" (seeds 000 and 001): candidate
  directions (closed-form factorization, PCA of w, random, or a file), each
  judged by how well two affine colour operators explain its effect
  (`voynov.py`); mask [||G(z + h)|| > ||G(z)||].
- Melas-Kyriazi et al., "Finding an Unsupervised Image Segmenter in Each of
  Your Deep Generative Models" (seed 002): a direction optimized for a bright
  centre and unchanged edges (`melas.py`); mask [G(z + eps v_l) > G(z + eps v_d)].

    layered-gan directions find --ckpt runs/stylegan2_demo --method voynov --out dirs/voynov
    layered-gan directions masks --direction dirs/voynov/directions.pt --num 10000 --out pairs/voynov
"""
