"""A CUDA stand-in: a non-CPU device, named `standin`, on which every path a GPU user takes can run in CI.

How it works
------------
PyTorch's PrivateUse1 dispatch key is registered from Python as a device type `standin` (two devices,
`standin:0` and `standin:1`) with a device module `torch.standin` (rng states, seeding, device count, as
`torch.cuda` has them). A tensor on it is a wrapper subclass (`StandinTensor`) around a CPU tensor that
holds its values; a `TorchDispatchMode`, entered by `active()`, sees every ATen operator
call. For each call it applies CUDA's rules, then runs the operator on the wrapped CPU tensors and wraps
the results again:

- tensors of one operator on two devices (a `standin` tensor and a CPU tensor that is not a 0-dim
  scalar, or two `standin` indices) are refused with CUDA's message; copies (`.to`, `copy_`) and CPU
  index tensors are the crossings CUDA allows, and each is counted;
- a random operator on the device given a `torch.Generator` of another device is refused with CUDA's
  message ("Expected a 'cuda' device type for generator"); without one it draws from the device's own
  default generator (a separate stream per device, saved and restored by `torch.standin.get_rng_state`
  / `set_rng_state`, seeded by `torch.manual_seed`);
- every read of a device value by the host (`.item()`, `bool(t)`, `float(t)`, `.tolist()`) and every
  device-to-host or host-to-device copy is recorded with the first source line of ours that caused it
  (`counts()`, `events()`), so a test can say where a command synchronizes.

A `torch.Generator` cannot be created on `standin` (a Python backend cannot provide one), as on a machine
where a generator of the device is not what the code asked for; the toolkit's rule (`layered_gan/rng.py`)
never asks for one.

What it cannot see: numerics (the values are computed by the CPU kernels, so float16 / TF32 / atomics
rounding and non-determinism of GPU kernels are not reproduced), kernel launches, streams and their
asynchrony, memory (nothing is allocated on a device), CUDA-only code paths (`device.type == "cuda"`
branches, the fused CUDA kernels: `cuda_ops` uses its reference implementation here), NCCL, and
speed. It checks placement, random streams and host synchronization, which is what breaks first.

Use: `with cuda_standin.active(): ...` (conftest's `standin` fixture); `python tests/cuda_standin.py ARGS...`
runs `layered-gan ARGS...` with the stand-in active (bench/gpu_check.sh --dry-run).
"""

import contextlib
import os
import sys
import traceback

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

DEVICE_TYPE = "standin"
DEVICE_COUNT = 2
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = tuple(os.path.join(_ROOT, d) + os.sep for d in ("layered_gan", "cuda_ops", "bench"))


class StandinTensor(torch.Tensor):
    """A tensor on `standin:index`; its values live in the CPU tensor `elem`."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem, index=0):
        out = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=torch.device(DEVICE_TYPE, index), requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __repr__(self, *, tensor_contents=None):
        return f"StandinTensor({self.elem!r}, device='{self.device}')"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _STATE.dispatch(func, args, kwargs or {})

    def tolist(self):
        _STATE.record("host read", "tolist")
        return self.elem.tolist()

    def numpy(self, *args, **kwargs):
        raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                        "tensor to host memory first.")

    def __reduce_ex__(self, protocol):  # torch.save of a device tensor: saved as its CPU values
        _STATE.record("device-to-host copy", "pickle")
        return self.elem.__reduce_ex__(protocol)


class _DeviceModule:
    """`torch.standin`: what the toolkit may ask of a device module (as of torch.cuda)."""

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def device_count():
        return DEVICE_COUNT

    @staticmethod
    def current_device():
        return 0

    @staticmethod
    def _is_in_bad_fork():
        return False

    @staticmethod
    def manual_seed_all(seed):
        for gen in _STATE.generators:
            gen.manual_seed(seed)

    manual_seed = manual_seed_all

    @staticmethod
    def get_rng_state(device=0):
        return _STATE.generators[_index(device)].get_state()

    @staticmethod
    def set_rng_state(state, device=0):
        _STATE.generators[_index(device)].set_state(state)

    @staticmethod
    def get_rng_state_all():
        return [gen.get_state() for gen in _STATE.generators]

    @staticmethod
    def set_rng_state_all(states):
        for gen, state in zip(_STATE.generators, states):
            gen.set_state(state)

    @staticmethod
    def synchronize(device=None):
        pass

    @staticmethod
    def is_bf16_supported(including_emulation=True):
        return True

    @staticmethod
    def _lazy_init():
        pass

    @staticmethod
    def is_initialized():
        return True


def _index(device):
    if isinstance(device, int):
        return device
    device = torch.device(device)
    return device.index or 0


class _State:
    def __init__(self):
        self.generators = [torch.Generator().manual_seed(0) for _ in range(DEVICE_COUNT)]
        self.log = []
        self.operators = 0  # ATen operators dispatched (every call the mode sees, CPU ones included)

    # -- events ---------------------------------------------------------------------------------------------
    def record(self, kind, what):
        where = "?"
        for frame in reversed(traceback.extract_stack()[:-1]):
            if frame.filename.startswith(_OURS):
                where = f"{os.path.relpath(frame.filename, _ROOT)}:{frame.lineno}"
                break
        self.log.append((kind, what, where))

    # -- dispatch -------------------------------------------------------------------------------------------
    def dispatch(self, func, args, kwargs):
        self.operators += 1
        flat = pytree.tree_leaves((args, kwargs))
        ours = [t for t in flat if isinstance(t, StandinTensor)]
        device = kwargs.get("device")
        index = _kwarg_index(device)
        if index is None and ours and device is None:
            index = ours[0].device.index
        name = func.overloadpacket.__name__
        if index is None:  # a CPU operator (a copy to the CPU is one of these)
            return self._to_cpu(func, args, kwargs, ours) if ours else func(*args, **kwargs)
        self._check_devices(func, flat, index)
        if name == "_local_scalar_dense":
            self.record("host read", "item")
            return ours[0].elem.item()
        gen = kwargs.get("generator")
        if gen is not None and gen.device.type != DEVICE_TYPE:
            raise RuntimeError(f"Expected a '{DEVICE_TYPE}' device type for generator but found "
                               f"'{gen.device.type}' (as CUDA: a generator must be on the device of the "
                               f"operator {func})")
        if any(isinstance(t, torch.Tensor) and not isinstance(t, StandinTensor) and t.dim() > 0 for t in flat):
            self.record("host-to-device copy", name)
        cpu_args, cpu_kwargs = pytree.tree_map(_unwrap, (args, kwargs))
        if "device" in cpu_kwargs and cpu_kwargs["device"] is not None:
            cpu_kwargs["device"] = torch.device("cpu")
        if torch.Tag.nondeterministic_seeded in func.tags:
            out = self._seeded(func, cpu_args, cpu_kwargs, index)
        else:
            out = func(*cpu_args, **cpu_kwargs)
        return _wrap_like(func, args, out, index)

    def _seeded(self, func, args, kwargs, index):
        """A random operator on the device draws from the device's generator, not the CPU's."""
        saved = torch.get_rng_state()
        torch.set_rng_state(self.generators[index].get_state())
        try:
            return func(*args, **kwargs)
        finally:
            self.generators[index].set_state(torch.get_rng_state())
            torch.set_rng_state(saved)

    def _to_cpu(self, func, args, kwargs, ours):
        name = func.overloadpacket.__name__
        if name not in ("_to_copy", "copy_", "to"):
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"cpu and {ours[0].device}! (operator {func})")
        self.record("device-to-host copy", name)
        cpu_args, cpu_kwargs = pytree.tree_map(_unwrap, (args, kwargs))
        return func(*cpu_args, **cpu_kwargs)

    def _check_devices(self, func, flat, index):
        name = func.overloadpacket.__name__
        for t in flat:
            if isinstance(t, StandinTensor):
                if t.device.index != index:
                    raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                                       f"devices, {DEVICE_TYPE}:{index} and {t.device}! (operator {func})")
            elif isinstance(t, torch.Tensor) and t.dim() > 0 and name not in _CROSSING:
                raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                                   f"{DEVICE_TYPE}:{index} and {t.device}! (operator {func})")


# the operators through which CUDA lets a CPU tensor meet a device tensor (each is a counted copy)
_CROSSING = {"_to_copy", "copy_", "to", "index", "index_put_", "index_put", "_index_put_impl_", "_copy_from",
             "_copy_from_and_resize", "lift_fresh", "lift_fresh_copy"}


def _kwarg_index(device):
    if device is None:
        return None
    device = torch.device(device)
    return (device.index or 0) if device.type == DEVICE_TYPE else None


def _unwrap(x):
    return x.elem if isinstance(x, StandinTensor) else x


def _wrap_like(func, args, out, index):
    """Wrap the CPU results; an operator that returns one of its (written) inputs returns that wrapper."""
    returns = func._schema.returns
    if len(returns) == 1 and returns[0].alias_info is not None and returns[0].alias_info.is_write:
        for arg, schema_arg in zip(args, func._schema.arguments):
            if schema_arg.alias_info is not None and schema_arg.alias_info.is_write:
                return arg
    return pytree.tree_map(lambda t: StandinTensor(t, index) if isinstance(t, torch.Tensor) else t, out)


class _Mode(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _STATE.dispatch(func, args, kwargs or {})


_STATE = _State()
_INSTALLED = []
# operators PyTorch runs with the Python dispatch excluded (torch.tensor(data, device=...) allocates and copies
# below it): registered as the device's kernels, they go to the same dispatch
_KERNELS = ("empty_strided", "empty.memory_format", "copy_", "_copy_from", "_copy_from_and_resize")


def _register_kernels():
    lib = torch.library.Library("aten", "IMPL")
    for name in _KERNELS:
        packet, _, overload = name.partition(".")
        op = getattr(getattr(torch.ops.aten, packet), overload or "default")
        lib.impl(name, lambda *args, _op=op, **kwargs: _STATE.dispatch(_op, args, kwargs), "PrivateUse1")
    return lib


def install():
    """Register the `standin` device in this process (idempotent). Operators on its tensors work from then on;
    creating them (`torch.zeros(..., device="standin")`, `.to("standin")`) needs `active()`."""
    if _INSTALLED:
        return
    from torch.utils.backend_registration import _setup_privateuseone_for_python_backend
    _setup_privateuseone_for_python_backend(DEVICE_TYPE, backend_module=_DeviceModule())
    _INSTALLED.append(_register_kernels())


@contextlib.contextmanager
def active():
    """Within: the dispatch mode sees every operator (CPU ones pass through, slower); events are recorded from a
    fresh log."""
    install()
    clear()
    with _Mode():
        yield


def clear():
    """Forget the events recorded so far."""
    _STATE.log.clear()
    _STATE.operators = 0


def events():
    """[(kind, what, "file:line"), ...]: host reads and copies recorded since `active()` began."""
    return list(_STATE.log)


def counts():
    """{kind: number} of the recorded events, and the operators dispatched."""
    out = {"operators": _STATE.operators}
    for kind, _, _ in _STATE.log:
        out[kind] = out.get(kind, 0) + 1
    return out


def main(argv):
    """`layered-gan ARGV...` with the stand-in active; the recorded events are summed up on stderr at exit."""
    from layered_gan.cli import main as cli_main
    with active():
        try:
            cli_main(argv, prog_name="layered-gan")
        finally:
            print(f"stand-in: {counts()}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
