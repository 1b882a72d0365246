"""Segment real images with a PerturbGAN run's layered generator and a trained encoder (PerturbGAN sec. 3.3):
the same command as `layered-gan encode`.

    python encode.py --ckpt runs/demo --images PHOTOS --out encoded/ [--gt MASKS] [--chunk 100] [--steps 1000]
    python encode.py --ckpt runs/demo --synthetic-test 1000 --out encoded/demo      # held-out split, scored
    python encode.py --ckpt runs/demo --images TRAIN --out enc_train --amortized    # one encoder, saved
    python encode.py --ckpt runs/demo --images NEW --out enc_new --encoder enc_train/encoder.pt
    torchrun --nproc_per_node=4 encode.py --ckpt runs/demo --images PHOTOS --out encoded/   # chunks split
"""

from layered_gan.cli import encode

if __name__ == "__main__":
    encode(prog_name="encode.py")
