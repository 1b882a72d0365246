"""`layered-gan synthetic`: build the synthetic dataset."""

import click

from ..command import command
from .synthetic import FAMILIES, build_synthetic


@command("synthetic")
@click.option("--out", default=None, help="Folder (default: a cache folder named by the parameters).")
@click.option("--resolution", default=64, show_default=True, type=click.IntRange(32, 128))
@click.option("--count", default=20000, show_default=True, type=click.IntRange(min=1), help="Training scenes.")
@click.option("--test-count", default=2000, show_default=True, type=click.IntRange(min=0), help="Held-out scenes.")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Processes (default: all cores).")
@click.option("--family", default="shapes", show_default=True, type=click.Choice(sorted(FAMILIES)),
              help="shapes: the demos' scenes; horizon: a second family (sky over ground, holes, objects cut by "
                   "the border) to check that settings carry over.")
def synthetic(out, resolution, count, test_count, seed, workers, family):
    """Build the synthetic object-on-background dataset with ground-truth masks."""
    print(build_synthetic(out, resolution, count, test_count, seed, workers, family=family))
