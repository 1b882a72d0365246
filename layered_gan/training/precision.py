"""The numeric precision of training (`train --precision`, config key `precision`), in one place.

- fp32 (default): everything in float32, as before this option existed.
- fp16 (a GPU): mixed precision as NVIDIA's StyleGAN2-ADA computes it: the synthesis and discriminator blocks
  of the top `model.num_fp16_res` resolutions (networks/stylegan2.py) run in float16, their conv outputs
  clamped to `conv_clamp` (256 by default with num_fp16_res); the mapping network, the 4x4 layers, the tRGB
  image sum and the losses stay float32. No loss scaling: the clamp keeps values in range.
- bf16 (the CPU, or a GPU with bfloat16): the forward passes and losses run under
  `torch.autocast(dtype=torch.bfloat16)`; the weights and the optimizer stay float32.

In every precision the averaged gradients are sanitized before the optimizer steps: non-finite values are set
to zero and counted on the device, without a host read; the loop logs the counts (since the process started)
at its ticks.
"""

import contextlib

import torch

from ..errors import BadValue
from ..networks.stylegan2 import set_fp16

PRECISIONS = ("fp32", "fp16", "bf16")


def check_precision(name, device):
    """`name`, refused with a BadValue where `device` cannot compute in it."""
    if name not in PRECISIONS:
        raise BadValue(f"--precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if name == "fp16" and kind == "cpu":
        raise BadValue("--precision fp16: float16 blocks compute on a GPU; on the CPU use bf16 (autocast) or fp32")
    if name == "bf16" and kind not in ("cpu", "cuda"):
        raise BadValue(f"--precision bf16: bfloat16 autocast runs on the CPU or CUDA, not on {device}")
    if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise BadValue(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 arithmetic; "
                       "use fp16 or fp32")
    return name


def in_one_bucket(tensors, fn):
    """Apply the in-place `fn` to `tensors` as one flat tensor (a few kernels, or one all-reduce, for a whole network
    instead of some per tensor), then copy the results back."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    fn(flat)
    torch._foreach_copy_(tensors, [v.view_as(t) for v, t in zip(flat.split([t.numel() for t in tensors]), tensors)])


class Precision:
    """What the training loop does for its precision: `prepare` the networks, run forward passes and losses
    under `autocast()`, `sanitize` each network's gradients before its optimizer steps, log `counts()`."""

    def __init__(self, name, device):
        self.name = check_precision(name, device)
        self.device_type = torch.device(device).type
        self.nonfinite_grads = torch.zeros([], dtype=torch.int64, device=device)  # values zeroed
        self.nonfinite_updates = torch.zeros([], dtype=torch.int64, device=device)  # sanitize calls that zeroed any

    def prepare(self, *modules):
        """fp16: the num_fp16_res blocks of the networks in `modules` compute in float16."""
        if self.name == "fp16":
            for module in modules:
                set_fp16(module)

    def autocast(self):
        """The context of the forward passes and losses: bfloat16 autocast for bf16, else none."""
        if self.name == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sanitize(self, module):
        """Set the non-finite values of module's gradients to zero and count them, on the device (no host read)."""
        def zero_non_finite(flat):
            bad = flat.isfinite().logical_not_().sum()
            flat.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            self.nonfinite_grads += bad
            self.nonfinite_updates += bad > 0

        in_one_bucket([p.grad for p in module.parameters() if p.grad is not None], zero_non_finite)

    def counts(self):
        """{log name: device tensor} of the counters; read them only when logging."""
        return {"precision/nonfinite_grads": self.nonfinite_grads,
                "precision/nonfinite_updates": self.nonfinite_updates}
