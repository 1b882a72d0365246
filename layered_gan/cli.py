"""`layered-gan`: every command of the toolkit, as subcommands of one installed entry point.

    layered-gan --help
    layered-gan demo                        # the README's first command: train, draw and score the demo
    layered-gan train --cfg demo            # also: python train.py --cfg demo
    layered-gan encode --ckpt runs/demo ... # also: python encode.py ...

Each package's commands live in its own `cli.py`; the library modules hold no click code. Errors follow
`command.py`: a user's mistake is one line on stderr and exit code 2.
"""

import time

import click

from .command import command, device_option, group
from .data.synthetic import main as synthetic
from .demo import format_summary, run_demo
from .directions.cli import cli as directions
from .distill import main as distill
from .encoding import main as encode
from .evaluation.baselines import main as baselines
from .evaluation.benchmarks import main as benchmarks
from .evaluation.evaluate import main as evaluate
from .evaluation.fid import main as fid
from .evaluation.generated import main as score_generated
from .generate import main as generate
from .labels4free import main as labels4free
from .prepare import main as prepare
from .segmenter.pairs import main as pairs
from .segmenter.segment import main as segment
from .training.cli import train


@group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Unsupervised object segmentation with layered GANs (PerturbGAN, Labels4Free, latent directions)."""


@command("demo")
@click.option("--out", default="runs/demo", show_default=True,
              help="Run folder: new or empty, or a demo run to show (finished) or continue (unfinished).")
@click.option("--num", default=2000, show_default=True, type=click.IntRange(1),
              help="Composites to score with the Table 1 protocol.")
@device_option
def demo(out, num, device):
    """Build the synthetic data, train the PerturbGAN demo, draw its layers and print its Table-1 mask IoU."""
    start = time.time()
    summary = run_demo(out, num, device)
    click.echo(format_summary(summary, time.time() - start if summary.get("again") else None))


COMMANDS = {
    "demo": demo, "train": train, "generate": generate, "encode": encode, "evaluate": evaluate,
    "score-generated": score_generated, "baselines": baselines, "benchmarks": benchmarks, "segment": segment,
    "distill": distill, "pairs": pairs, "prepare": prepare, "synthetic": synthetic, "directions": directions,
    "labels4free": labels4free, "fid": fid,
}
for _name, _command in COMMANDS.items():
    main.add_command(_command, _name)
