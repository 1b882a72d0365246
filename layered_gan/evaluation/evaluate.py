"""Score predicted masks against ground truth: a table, a JSON and a picture of the best and worst cases.

    layered-gan evaluate --pred OUT/masks --gt GT_MASKS --images IMAGES --out report/

Predictions and ground truth are folders (matched by file name without
extension, sub-folders included) or LMDBs (matched by key). A prediction whose
size differs from its ground truth is resized to it (nearest). Ground truth
without a prediction is an error naming the files, unless `--missing empty`
scores them as empty predictions (PerturbGAN Table 2's "all" column counts
missed objects this way); predictions without ground truth are listed. Masks
may be soft (grey levels / 255): metrics binarize at --threshold, max F_beta
sweeps 255 thresholds (see metrics.py for both aggregations).
"""

import os
import warnings

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from ..data.readers import DecodeError
from ..files import save_png, write_json
from ..errors import BadValue, MissingPath
from .metrics import Scores, format_table
from .sources import FileSource

MISSING = ("error", "empty")


class MatchError(BadValue):
    """Predictions and ground truth whose names do not pair up."""


def listing(names, limit=10):
    """'a, b, c and 7 more'."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def match_names(pred_names, gt_names):
    """(names in both, ground truth without prediction, predictions without ground truth), each sorted."""
    pred, gt = set(pred_names), set(gt_names)
    return sorted(pred & gt), sorted(gt - pred), sorted(pred - gt)


def resize_nearest(mask, shape):
    return np.asarray(Image.fromarray(mask.astype(np.float32), "F").resize(shape[::-1], Image.NEAREST))


def evaluate(pred, gt, threshold=0.5, missing="error", chunk=64, progress=True):
    """Score a prediction source against a ground-truth source (see sources.py). Returns a JSON-ready dict."""
    if missing not in MISSING:
        raise BadValue(f"missing must be one of {MISSING}, got {missing!r}")
    matched, absent, extra = match_names(pred.names, gt.names)
    if not matched:
        raise MatchError(f"no prediction matches a ground-truth name: predictions are named like "
                         f"{listing(pred.names, 3)}, ground truth like {listing(gt.names, 3)}")
    if absent and missing == "error":
        raise MatchError(f"{len(absent)} ground-truth masks have no prediction: {listing(absent)} "
                         "(--missing empty scores them as empty predictions)")
    scores, resized, unreadable = Scores(threshold), [], []
    for start in tqdm(range(0, len(matched), chunk), desc="scoring", disable=not progress):
        names = matched[start:start + chunk]
        for name, p, g in zip(names, _readable(pred, names, unreadable), gt.masks(names)):
            if p is None:
                continue
            if p.shape != g.shape:
                p = resize_nearest(p, g.shape)
                resized.append(name)
            scores.update(p[None], g[None] > 0.5, [name])
    for name in absent:
        g = gt.mask(name)
        scores.update(np.zeros_like(g)[None], g[None] > 0.5, [name])
    per_image = scores.per_image()
    return {"summary": scores.summary(),
            "per_image": {n: {k: float(v[i]) for k, v in per_image.items()} for i, n in enumerate(scores.names)},
            "scored_as_empty": absent, "unmatched_predictions": extra, "unreadable_predictions": unreadable,
            "resized": len(resized), "resized_examples": resized[:10]}


def _readable(pred, names, unreadable):
    """pred's masks of `names`, None for each that cannot be decoded (its name appended to `unreadable`)."""
    try:
        return pred.masks(names)
    except DecodeError:
        out = []
        for name in names:
            try:
                out.append(pred.mask(name))
            except DecodeError as exc:
                warnings.warn(f"{exc}; skipped", RuntimeWarning)
                unreadable.append(name)
                out.append(None)
        return out


def error_map(pred, gt):
    """RGB uint8: true positives white, false positives red, false negatives blue, true negatives black."""
    out = np.zeros(gt.shape + (3,), np.uint8)
    out[pred & gt] = 255
    out[pred & ~gt] = (255, 0, 0)
    out[~pred & gt] = (0, 0, 255)
    return out


def case_figure(result, pred, gt, images=None, threshold=0.5, count=4, tile=128):
    """Rows: the `count` best then `count` worst images by foreground IoU; columns: image, GT, prediction, errors.

    Returns (PIL image, names shown without an image).
    """
    ranked = sorted(result["per_image"], key=lambda n: (-result["per_image"][n]["fg_iou"], n))
    rows = list(dict.fromkeys(ranked[:count] + ranked[::-1][:count][::-1]))
    sheet = Image.new("RGB", (4 * tile, len(rows) * tile))
    pred_names, no_image = set(pred.names), []
    for r, name in enumerate(rows):
        g = gt.mask(name)
        p = pred.mask(name) if name in pred_names else np.zeros_like(g)
        p = resize_nearest(p, g.shape) if p.shape != g.shape else p
        try:
            img = images.image(name) if images is not None else None
        except KeyError:
            img = None
        if img is None:
            no_image.append(name)
        tiles = [img.convert("RGB") if img is not None else Image.new("RGB", g.shape[::-1], (128, 128, 128)),
                 Image.fromarray((g > 0.5).astype(np.uint8) * 255).convert("RGB"),
                 Image.fromarray((np.clip(p, 0, 1) * 255).round().astype(np.uint8)).convert("RGB"),
                 Image.fromarray(error_map(p > threshold, g > 0.5))]
        for c, t in enumerate(tiles):
            sheet.paste(t.resize((tile, tile), Image.BICUBIC if c == 0 else Image.NEAREST), (c * tile, r * tile))
        ImageDraw.Draw(sheet).text((3, r * tile + 2), f"{name[:18]} {result['per_image'][name]['fg_iou']:.2f}",
                                   fill=(255, 255, 0))
    return sheet, no_image


def comparison_table(summaries, echo=print):
    """One line per method: per-image and all-pixel foreground IoU, per-image mIoU, the authors' F_max."""
    echo(f"\n{'method':10s} {'fg IoU/img':>11s} {'fg IoU all':>11s} {'mIoU/img':>9s} {'F_max':>10s}")
    for method, s in summaries.items():
        echo(f"{method:10s} {s['per_image']['fg_iou']:11.4f} {s['all_pixels']['fg_iou']:11.4f} "
             f"{s['per_image']['miou']:9.4f} {s['per_image']['f_max']:10.4f}")


def report(result, out, pred, gt, images=None, cases=4, echo=print):
    """Print the table and notes; write OUT/metrics.json and OUT/cases.png."""
    echo(format_table(result["summary"]))
    if result["scored_as_empty"]:
        echo(f"{len(result['scored_as_empty'])} ground-truth masks had no prediction and were scored as empty: "
             f"{listing(result['scored_as_empty'])}")
    if result["unmatched_predictions"]:
        echo(f"{len(result['unmatched_predictions'])} predictions have no ground truth (not scored): "
             f"{listing(result['unmatched_predictions'])}")
    if result["resized"]:
        echo(f"{result['resized']} predictions were resized to their ground truth (nearest), e.g. "
             f"{listing(result['resized_examples'], 3)}")
    write_json(os.path.join(out, "metrics.json"), result)
    sheet, no_image = case_figure(result, pred, gt, images, result["summary"]["threshold"], cases)
    save_png(sheet, os.path.join(out, "cases.png"))
    if images is not None and no_image:
        echo(f"no image for {listing(no_image)} in the cases picture (drawn grey)")
    echo(f"wrote {os.path.join(out, 'metrics.json')} and {os.path.join(out, 'cases.png')} "
         "(rows: best then worst; columns: image, ground truth, prediction, errors: FP red, FN blue)")


def open_source(path, option, **masks):
    """A FileSource (masks: its mask settings, see sources.mask_array), with errors naming the option."""
    try:
        return FileSource(path, **masks)
    except FileNotFoundError as exc:
        raise MissingPath(f"{option}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise BadValue(f"{option}: {exc}") from None
