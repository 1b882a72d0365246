"""FID against kimg and against training time, side by side, from runs trained with log.fid_kimg.

Reads each RUN/metrics.jsonl (training/metrics.py) and prints one table per run, then, for a target FID,
the first kimg and training time at which each run reaches it.

    python train.py --cfg stylegan2_demo --set log.fid_kimg=5 --out runs/fid_sg2
    python train.py --cfg stylegan2_demo_projected --set log.fid_kimg=2.5 --out runs/fid_projected
    python bench/fid_curves.py runs/fid_sg2 runs/fid_projected --target 0.867
"""

import os
import sys

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from layered_gan.training.metrics import read_metrics  # noqa: E402


def first_reaching(entries, target):
    """The first entry whose FID is at or below target, or None."""
    return next((e for e in entries if e["fid"] <= target), None)


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--target", type=float, default=None, help="FID to reach (e.g. the shipped generator's).")
def main(runs, target):
    for run in runs:
        entries = read_metrics(run)
        if not entries:
            raise click.UsageError(f"{run} has no metrics.jsonl: train it with --set log.fid_kimg=N")
        print(f"\n{run} ({entries[0]['features']} features, {entries[0]['num']} images)")
        print(f"{'kimg':>8s} {'train min':>10s} {'FID':>8s} {'KID':>9s}")
        for e in entries:
            print(f"{e['kimg']:8.1f} {e['train_seconds'] / 60:10.1f} {e['fid']:8.4f} {e['kid']:9.5f}")
    if target is not None:
        print(f"\nfirst reaching FID <= {target}:")
        for run in runs:
            e = first_reaching(read_metrics(run), target)
            best = min(read_metrics(run), key=lambda x: x["fid"])
            print(f"  {run}: " + (f"{e['kimg']:.1f} kimg, {e['train_seconds'] / 60:.1f} min" if e else
                                  f"not reached (best {best['fid']:.4f} at {best['kimg']:.1f} kimg)"))


if __name__ == "__main__":
    main()
