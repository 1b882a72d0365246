"""`python -m layered_gan ...`: the same as `layered-gan ...`."""

from .cli import main

main(prog_name="layered-gan")
