"""Where random numbers come from: one rule for every device.

- Every `torch.Generator` the toolkit makes lives on the CPU (`generator(seed)`). What it draws for a
  device is drawn on the CPU and then moved (`randn`), so a seed gives the same
  numbers on every device (CUDA refuses a CPU generator in a device op; a CUDA generator's stream
  differs from the CPU's).
- Draws without a generator (the training step's noise inputs) come from the device's own default
  generator, seeded by `torch.manual_seed`.
- A checkpoint keeps every stream (`capture` / `restore`): the CPU's, the training device's and the
  run's own generators, read and written on the CPU whatever device the run is on.
"""

import hashlib

import torch


def generator(seed):
    """A CPU torch.Generator seeded with `seed`."""
    return torch.Generator().manual_seed(int(seed))


def randn(shape, gen=None, device="cpu", dtype=torch.float32):
    """Normal samples on `device`: from `gen` (drawn on the CPU, then moved) or, without one, the device's own."""
    if gen is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)


def _device_module(device):
    device = torch.device(device)
    return None if device.type == "cpu" else torch.get_device_module(device.type)


def capture(device, generators):
    """Every stream a training process draws from: {"cpu", "device": (type, state) or None, "ours": {name: state}}."""
    device = torch.device(device)
    module = _device_module(device)
    return {"cpu": torch.get_rng_state(),
            "device": None if module is None else (device.type, module.get_rng_state(device.index or 0).cpu()),
            "ours": {name: gen.get_state() for name, gen in generators.items()}}


def restore(state, device, generators):
    """Set the streams `capture` saved. Returns a note (a string) where a stream could not be carried over.

    The training device's stream (noise inputs) is the CPU stream when the run is on the CPU. Across device types
    its state moves when the formats agree (the same generator kind); otherwise the device's generator restarts
    from a seed derived from the saved state, and the note says so: the run continues, not bit for bit.
    """
    if isinstance(state, (tuple, list)):  # checkpoints before issue 27: (ours, cpu)
        state = {"cpu": state[1], "device": None, "ours": {"rng": state[0]}}
    for name, gen in generators.items():
        gen.set_state(state["ours"][name].cpu())
    device = torch.device(device)
    saved = state.get("device")
    saved_type, device_state = saved if saved is not None else ("cpu", state["cpu"])
    device_state = device_state.cpu()
    module = _device_module(device)
    torch.set_rng_state(state["cpu"].cpu())
    if module is None:
        torch.set_rng_state(device_state)
        return None
    try:
        module.set_rng_state(device_state, device.index or 0)
        return None
    except (RuntimeError, ValueError):
        seed = int.from_bytes(hashlib.sha1(device_state.numpy().tobytes()).digest()[:8], "little")
        module.manual_seed(seed)
        return (f"the {device} noise stream restarts from seed {seed}: the checkpoint's was a {saved_type} stream, "
                f"whose state {device.type} cannot take")
