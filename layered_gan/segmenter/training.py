"""Supervised U-Net training, shared by the reference segmenter and distillation.

Per-pixel binary cross-entropy against (possibly soft) masks, Adam, and a step
decay of the learning rate: the recipe of Voynov et al. and Melas-Kyriazi et
al. (lr 1e-3, x 0.2 after two thirds of the steps: 8 000 of 12 000).
"""

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import BadValue


def repeat(loader):
    """Endless batches from a finite iterable, a fresh pass each time (shuffling loaders reshuffle).

    A pass with no batch is an error (not an endless loop): a loader that drops the last incomplete batch
    yields none from fewer examples than one batch.
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise BadValue(f"no batch from {type(loader).__name__}: fewer examples than one batch "
                           f"({getattr(loader, 'batch_size', '?')}, incomplete batches dropped)?")


def fit(model, batches, steps, lr=1e-3, milestones=None, gamma=0.2, device="cpu", validate=None, every=0,
        progress=True, desc="U-Net"):
    """Train `model` for `steps` steps on (image [B, 3, H, W] in [-1, 1], mask [B, 1, H, W] in [0, 1]) batches.

    milestones: steps where the learning rate is multiplied by gamma (default: 2/3 of steps).
    validate: called as validate(model) -> {name: number} every `every` steps and at the end.
    Returns the history: [{"step", "loss", **validation figures}].
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    milestones = [int(steps * 2 / 3)] if milestones is None else milestones
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=gamma)
    history, bar = [], tqdm(total=steps, desc=desc, disable=not progress)
    batches = iter(batches)
    for step in range(1, steps + 1):
        x, y = next(batches)
        model.train()
        loss = F.binary_cross_entropy_with_logits(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update()
        bar.set_postfix_str(f"bce={loss.item():.3f}")
        if validate is not None and (step == steps or (every and step % every == 0)):
            history.append({"step": step, "loss": loss.item(), **validate(model)})
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "step"))
    bar.close()
    return history
