"""FID while training, as StyleGAN2-ADA's --metrics: the EMA generator against the training data.

Every log.fid_kimg (and at the start and the end) the run's FID and KID over log.fid_num images, with
log.fid_features ("reference": the reference U-Net's encoder on the synthetic dataset, no download;
"inception": Inception from $LAYERED_GAN_INCEPTION), are written to OUT/metrics.jsonl, one JSON object per
line with kimg and the training seconds so far (metric time excluded; carried over resumes), and to
TensorBoard. A resumed run drops the lines past its checkpoint, so the file is the one an uninterrupted run
writes. `python bench/fid_curves.py RUN...` tabulates the files.
"""

import json
import math
import os

from ..data.dataset import centre_crops
from ..evaluation.fid import FIDScorer, run_features
from ..files import atomic_write

FILENAME = "metrics.jsonl"


def read_metrics(out):
    """The entries of OUT/metrics.jsonl (empty when there is none)."""
    path = os.path.join(out, FILENAME)
    if not os.path.isfile(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


class TrainingFID:
    """Decides when the FID is due and writes it; a no-op when log.fid_kimg is 0 (or on ranks other than 0)."""

    def __init__(self, cfg, out, images_seen, rank, device):
        log = cfg["log"]
        self.interval = log.get("fid_kimg", 0) * 1000 if rank == 0 else 0
        self.out = out
        if not self.interval:
            return
        self.name = log.get("fid_features", "reference")
        features = run_features(cfg, self.name, device, where=f"{out} (log.fid_features = reference)",
                                progress=False)
        res = cfg["model"]["resolution"]
        data = centre_crops(cfg["data"], res)
        self.scorer = FIDScorer(features, data, log.get("fid_num", 2000), device=device, progress=False)
        self.entries = [e for e in read_metrics(out) if e["images_seen"] <= images_seen]
        done = {e["images_seen"] for e in self.entries}
        # due at the start of a fresh run, then at each multiple of the interval
        self.next = images_seen if images_seen not in done else \
            (math.floor(images_seen / self.interval) + 1) * self.interval

    def due(self, images_seen, total):
        return bool(self.interval) and (images_seen >= self.next or images_seen >= total) and \
            not (self.entries and self.entries[-1]["images_seen"] == images_seen)

    def __call__(self, G_ema, images_seen, train_seconds, writer):
        """Score G_ema, append the entry to OUT/metrics.jsonl (rewritten atomically) and TensorBoard."""
        scores = self.scorer(G_ema)
        entry = {"images_seen": images_seen, "kimg": images_seen / 1000, "train_seconds": round(train_seconds, 2),
                 "features": self.name, "num": self.scorer.num, **scores}
        self.entries.append(entry)
        text = "".join(json.dumps(e) + "\n" for e in self.entries)
        atomic_write(os.path.join(self.out, FILENAME), lambda fh: fh.write(text.encode()))
        writer.add_scalar(f"metrics/fid_{self.name}", scores["fid"], images_seen)
        writer.add_scalar(f"metrics/kid_{self.name}", scores["kid"], images_seen)
        self.next = (math.floor(images_seen / self.interval) + 1) * self.interval
        return entry
