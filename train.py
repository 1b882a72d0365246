"""Train a model from a config: the same command as `layered-gan train` (see layered_gan/training/cli.py).

    python train.py --cfg NAME [--data PATH] [--out DIR] [--set key=value ...] [--resume RUN]
    torchrun --nproc_per_node=N train.py --cfg NAME ...      # several GPUs (or CPU processes)
"""

from layered_gan.training.cli import train

if __name__ == "__main__":
    train(prog_name="train.py")
