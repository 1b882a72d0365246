"""The device a process computes on and, under torchrun, the backend of its process group.

`--device` names a torch device (cpu, cuda, cuda:1, ...). A single process uses it as given. Under torchrun
(WORLD_SIZE > 1), `--device cuda` gives each process on a machine its own GPU, `cuda:LOCAL_RANK`, with the
nccl backend; an explicit `cuda:N` is honoured only with one process per machine (with several it is refused:
they would all share GPU N). Any other device type (cpu, ...) puts every process on that device, with gloo.
Nothing falls back: cuda where no GPU is visible, a GPU index past the last one, or more processes on a
machine than GPUs is a one-line `BadValue`.
"""

import dataclasses
import os

import torch

from .errors import BadValue


def check_device(device):
    """`device` as a torch device string; a cuda device must be a visible GPU."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise BadValue(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = (f"CUDA {torch.version.cuda}" if torch.version.cuda
                     else f"ROCm {torch.version.hip}" if torch.version.hip else "no CUDA")
            raise BadValue(f"--device {device}: no CUDA GPU is visible (torch.cuda.is_available() is False; torch "
                           f"{torch.__version__} built for {build}); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise BadValue(f"--device {device}: there is no GPU {parsed.index}, {count} visible (cuda:0.."
                           f"cuda:{count - 1})")
    return str(parsed)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a process computes: its device, its process group's backend (None: a single process), its rank
    among `world` processes and among the `local_world` ones on its machine."""

    device: str
    backend: str | None = None
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    def describe(self):
        """One line for the start of a run, e.g. `device: cuda:0..cuda:7 (8 processes, nccl)`."""
        if self.world == 1:
            return f"device: {self.device} (1 process)"
        devices = f"cuda:0..cuda:{self.local_world - 1}" if self.backend == "nccl" and self.local_world > 1 \
            else self.device
        per_machine = f", {self.local_world} per machine" if self.world > self.local_world else ""
        return f"device: {devices} ({self.world} processes{per_machine}, {self.backend})"


def place(device, env=os.environ):
    """The `Placement` of this process for `--device device`, given the variables torchrun sets in `env`."""
    device = check_device(device)
    world = int(env.get("WORLD_SIZE", "1"))
    if world == 1:
        return Placement(device)
    missing = [name for name in ("RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE") if name not in env]
    if missing:
        raise BadValue(f"WORLD_SIZE is {world} but {', '.join(missing)} is not set: start the processes with "
                       "torchrun")
    rank, local_rank, local_world = int(env["RANK"]), int(env["LOCAL_RANK"]), int(env["LOCAL_WORLD_SIZE"])
    parsed = torch.device(device)
    if parsed.type != "cuda":
        return Placement(device, "gloo", rank, world, local_rank, local_world)
    if parsed.index is not None and local_world > 1:
        raise BadValue(f"--device {device}: under torchrun each of the {local_world} processes on this machine "
                       "takes its own GPU (cuda:LOCAL_RANK); give --device cuda, and CUDA_VISIBLE_DEVICES to "
                       "choose the GPUs")
    count = torch.cuda.device_count()
    if local_world > count:
        raise BadValue(f"--device {device}: {local_world} processes on this machine (torchrun --nproc_per_node) "
                       f"but {count} GPUs visible; start at most {count}")
    return Placement(device if parsed.index is not None else f"cuda:{local_rank}", "nccl", rank, world,
                     local_rank, local_world)


def start(placement):
    """Make `placement`'s GPU the current one, and under torchrun join the process group (torchrun's env://)."""
    if placement.device.startswith("cuda:"):
        torch.cuda.set_device(placement.device)
    if placement.backend:
        torch.distributed.init_process_group(placement.backend)
