"""The segmenter commands: `layered-gan segment` (apply a trained segmenter) and `pairs` (export pairs)."""

import json
import os

import click

from ..command import command, device_option
from ..errors import about
from ..evaluation.evaluate import open_source
from .filters import FILTER_RULES, FILTER_RULES_HELP, default_filters
from .model import load_segmenter
from .pairs import PairStream, export_pairs, generator_source
from .segment import segment_source


def filter_options(fn):
    """The filter settings shared by the export and distill commands."""
    options = [
        click.option("--max-coverage", default=0.5, show_default=True, help="Drop masks covering more."),
        click.option("--min-coverage", default=0.01, show_default=True, help="Drop masks covering less."),
        click.option("--histogram/--no-histogram", default=True, show_default=True,
                     help="Low-contrast histogram test (on the soft mask for a layered generator)."),
        click.option("--component-ratio", default=0.2, show_default=True,
                     help="Remove components smaller than this x the largest."),
        click.option("--filter-rules", default="code", show_default=True, type=click.Choice(FILTER_RULES),
                     help=FILTER_RULES_HELP),
        click.option("--threshold", default=0.5, show_default=True,
                     help="Binarize a layered or Labels4Free generator's masks at this value (negative: keep them "
                          "soft)."),
        click.option("--truncation", default=1.0, show_default=True,
                     help="Truncation psi of a layered or Labels4Free generator (a directions file keeps its own)."),
        click.option("--placement", default=None, type=click.FloatRange(0, 1, min_open=True),
                     help="A layered or Labels4Free generator's pairs: place its object at a random scale in "
                          "[PLACEMENT, 1] and a random position before compositing (default: as drawn; not in the "
                          "papers)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@command("segment")
@click.option("--model", required=True, help="segmenter.pt, or a folder holding it (a distill seed folder).")
@click.option("--images", required=True, help="Images: a folder (any sizes, sub-folders kept) or an LMDB.")
@click.option("--out", required=True, help="Output folder: masks/ and overlays/.")
@click.option("--threshold", default=0.5, show_default=True)
@click.option("--soft", is_flag=True, help="Write foreground probabilities as grey levels instead of 0 / 255.")
@device_option
def segment(model, images, out, threshold, soft, device):
    """Segment a folder of images with a trained segmenter."""
    with about("--model"):
        segmenter, _ = load_segmenter(model, device)
    count = segment_source(segmenter, open_source(images, "--images"), out, threshold, soft)
    click.echo(f"{count} masks in {os.path.join(out, 'masks')}, overlays in {os.path.join(out, 'overlays')}")


@command("pairs")
@click.option("--ckpt", required=True, help="Run folder or checkpoint of a layered generator.")
@click.option("--num", required=True, type=click.IntRange(min=1), help="Pairs to export.")
@click.option("--out", required=True, help="New folder for the LMDBs.")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch", default=256, show_default=True, type=click.IntRange(min=1), help="Pairs generated per step.")
@filter_options
@device_option
def pairs(ckpt, num, out, seed, batch, max_coverage, min_coverage, histogram, component_ratio, filter_rules, threshold,
          truncation, placement, device):
    """Export filtered generated pairs to an LMDB for distillation (`distill --pairs`)."""
    with about("--ckpt"):
        source, _ = generator_source(ckpt, threshold, truncation, device, placement)
    filters = default_filters(max_coverage, min_coverage, histogram, component_ratio, filter_rules)
    with about("--out"):
        export_pairs(PairStream(source, filters, batch, seed), num, out)
    click.echo(f"{num} pairs in {out}; filters: {json.dumps(filters.report())}")
