"""NVIDIA's StyleGAN2 pickles, read without TensorFlow and without running pickled code, as port-layout dicts.

Two formats, told apart by content:
- TensorFlow releases (stylegan2, stylegan2-ada TF): a `(G, D, Gs)` tuple, or a single network, of
  `dnnlib.tflib.network.Network` states (`version`, `static_kwargs`, `components`, `variables` as (name,
  numpy array) pairs). `Gs`'s `dlatent_avg` is the truncation centre.
- stylegan2-ada-pytorch: a dict `G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs` of persistent
  modules, each pickled as a call of `torch_utils.persistence._reconstruct_persistent_obj(meta)` whose
  `meta` carries the module's Python source (NVIDIA's loader executes it), its class name and its state.

`RestrictedUnpickler` allow-lists exactly the globals these formats need and refuses every other one,
naming it, before anything is called. A TF network becomes a `TFNetwork` holder, a persistent module a
`PersistentModule` holder of its state (the embedded source is never compiled); torch storages load
through `torch.load(weights_only=True)`.

`read_nvidia_pickle` turns either into the dict the StyleGAN2 port's `torch.save` files hold (`g_ema`,
`g`, `d`, `latent_avg`, see port.py) plus `nvidia`: what that layout cannot hold (`conv_clamp`,
`d_conv_clamp`, `mbstd_group`, `num_fp16_res`, `d_num_fp16_res`) and where it came from. Variable names,
transposes, the flipped up-sampling kernels, `mod_bias + 1` and the noise buffers follow NVIDIA's `legacy.py`
(stylegan2-ada-pytorch) and the port's `convert_weight.py`. The fp16 settings (`num_fp16_res`) carry over to
the networks built from the file: their top blocks compute in float16 when training with `--precision fp16`
(training/precision.py), in float32 otherwise, as NVIDIA's code does with `force_fp32`.
"""

import io
import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import torch

from ..errors import BadValue, MissingPath
from .port import PORT_LR_MLP, _kernel

DEFAULT_FILTER = (1, 3, 3, 1)
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # torch.save's non-zip header

# The classes of stylegan2-ada-pytorch's training/networks.py and training/augment.py.
PERSISTENT_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
                      "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer", "Discriminator", "DiscriminatorBlock",
                      "DiscriminatorEpilogue", "MinibatchStdLayer", "AugmentPipe"}


class TFNetwork:
    """The pickled state of a `dnnlib.tflib.network.Network`, kept as data (the TF graph is never built)."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or not isinstance(state.get("version"), int):
            raise BadValue("a dnnlib.tflib.network.Network state without a version")
        if state["version"] < 4:
            raise BadValue(f"TensorFlow network pickle version {state['version']} is too old (4 or later needed)")
        self.name = state.get("name")
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.variables = list(state.get("variables") or [])

    def params(self, prefix=""):
        """{name: array} of this network's variables and its components' ('mapping/Dense0/weight', ...)."""
        out = {prefix + name: np.asarray(value) for name, value in self.variables}
        for name, component in self.components.items():
            if not isinstance(component, TFNetwork):
                raise BadValue(f"component {name!r} of TF network {self.name!r} is not a network")
            out.update(component.params(f"{prefix}{name}/"))
        return out


class PersistentModule:
    """A stylegan2-ada-pytorch persistent module's class name and state; its embedded source is ignored."""

    def __init__(self, class_name, state):
        self.class_name = class_name
        self.state = state

    @property
    def init_kwargs(self):
        return dict(self.state.get("_init_kwargs") or {})

    def attr(self, name, default=None):
        return self.state.get(name, default)

    def tensors(self, prefix=""):
        """{dotted name: tensor} of every parameter and buffer, sub-modules included (state_dict names)."""
        out = {}
        for kind in ("_parameters", "_buffers"):
            out.update({prefix + k: v for k, v in (self.state.get(kind) or {}).items() if v is not None})
        for name, module in (self.state.get("_modules") or {}).items():
            if not isinstance(module, PersistentModule):
                raise BadValue(f"sub-module {prefix + name!r} is not a stylegan2-ada-pytorch module")
            out.update(module.tensors(f"{prefix}{name}."))
        return out

    def modules(self, prefix=""):
        """{dotted name: PersistentModule} of this module ('') and every sub-module."""
        out = {prefix.rstrip("."): self}
        for name, module in (self.state.get("_modules") or {}).items():
            out.update(module.modules(f"{prefix}{name}."))
        return out


def _persistent_module(meta):
    """Stands in for `torch_utils.persistence._reconstruct_persistent_obj`: a holder, the source never run."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise BadValue("a stylegan2-ada-pytorch persistent object that is not a class instance with a state")
    name = meta.get("class_name")
    if name not in PERSISTENT_CLASSES:
        raise BadValue(f"refused persistent class {name!r}: not one of stylegan2-ada-pytorch's networks "
                       f"({', '.join(sorted(PERSISTENT_CLASSES))}); its embedded source was not run")
    return PersistentModule(name, meta["state"])


def _ndarray(subtype, shape, dtype):
    """numpy's `_reconstruct`: an empty plain ndarray that BUILD then fills from bytes."""
    if subtype is not np.ndarray:
        raise BadValue(f"refused numpy array subclass {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype, data=None):
    """numpy's `scalar`: a number of a plain (non-object) dtype from its bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise BadValue(f"refused numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _storage_from_bytes(blob):
    """`torch.storage._load_from_bytes`: the blob is itself a torch file; read it weights-only."""
    if not isinstance(blob, bytes):
        raise BadValue("a torch storage that is not a byte string")
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise BadValue(f"a torch storage inside the pickle was refused by the weights-only loader: {exc}") from None


def _tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, *metadata):
    """`torch._utils._rebuild_tensor_v2` for a storage our loader produced and no hooks."""
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)) or backward_hooks:
        raise BadValue("refused a tensor that is not a plain storage view")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _parameter(data, requires_grad=False, backward_hooks=None, *state):
    """`torch._utils._rebuild_parameter`: the tensor itself (we need no Parameter)."""
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise BadValue("refused a parameter that is not a plain tensor")
    return data


_ALLOWED = {
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_module,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access
    ("dnnlib", "EasyDict"): dict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray,  # numpy 1.x
    ("numpy._core.multiarray", "_reconstruct"): _ndarray,  # numpy 2
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of NVIDIA's network pickles; any other is refused by name."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise BadValue(f"refused to load {module}.{name}: not part of NVIDIA's StyleGAN2 network pickle "
                           "formats (nothing from the file was run)") from None

    def persistent_load(self, pid):
        raise BadValue("refused a persistent id: not part of NVIDIA's StyleGAN2 network pickle formats")


def is_nvidia_pickle(path):
    """True for a plain pickle (protocol 2 or later) that is not a torch.save file, by the first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(len(_TORCH_LEGACY_MAGIC))
    return head[:1] == b"\x80" and head[1:2] >= b"\x02" and head != _TORCH_LEGACY_MAGIC


def load_restricted(path):
    """The pickle's object through `RestrictedUnpickler` (holders in place of networks)."""
    if not os.path.isfile(path):
        raise MissingPath(f"{path} does not exist")
    with open(path, "rb") as fh:
        try:
            return RestrictedUnpickler(fh).load()
        except BadValue as exc:
            raise BadValue(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise BadValue(f"{path} is not a readable NVIDIA StyleGAN2 pickle: {exc}") from None


def read_nvidia_pickle(path):
    """A port-layout checkpoint dict (`g_ema`, `latent_avg`, `g`, `d` where present, `nvidia`) of either format."""
    data = load_restricted(path)
    if isinstance(data, TFNetwork) or (isinstance(data, tuple) and data and isinstance(data[0], TFNetwork)):
        return _tf_checkpoint(data, path)
    if isinstance(data, dict) and isinstance(data.get("G_ema"), PersistentModule):
        return _ada_checkpoint(data, path)
    raise BadValue(f"{path} is neither a TensorFlow StyleGAN2 pickle ((G, D, Gs) or one network) nor a "
                   "stylegan2-ada-pytorch one (a dict with G_ema)")


# ---- TensorFlow pickles (variable names and layouts as NVIDIA's legacy.py and the port's convert_weight.py)


class _Consumed(dict):
    """Named tensors that must each be used once; `check_all_used()` names the first one that was not."""

    def __init__(self, items, what):
        super().__init__(items)
        self.what, self.used = what, set()

    def take(self, name):
        if name not in self:
            raise BadValue(f"{self.what}: {name!r} is missing (the architecture read from the other tensors "
                           "needs it)")
        self.used.add(name)
        return self[name]

    def check_all_used(self):
        left = sorted(set(self) - self.used)
        if left:
            raise BadValue(f"{self.what}: unexpected {left[0]!r} ({len(left)} left over); an architecture "
                           "feature this toolkit does not have?")


def _t(array):
    return torch.tensor(np.array(array, dtype=np.float32))


def _tf_conv_weight(array):
    """TF conv kernel [k, k, I, O] -> torch [O, I, k, k]."""
    return _t(array.transpose(3, 2, 0, 1))


def _check_tf_kwargs(kwargs, what, architecture):
    if kwargs.get("label_size", 0):
        raise BadValue(f"{what}: conditional labels (label_size={kwargs['label_size']}) are not supported")
    if kwargs.get("architecture", architecture) != architecture:
        raise BadValue(f"{what}: the {kwargs['architecture']!r} architecture is not supported (only {architecture!r})")
    for key in ("nonlinearity", "mapping_nonlinearity"):
        if kwargs.get(key, "lrelu") != "lrelu":
            raise BadValue(f"{what}: {key}={kwargs[key]!r} is not supported (only 'lrelu')")
    if kwargs.get("use_noise", True) is not True:
        raise BadValue(f"{what}: use_noise={kwargs['use_noise']} is not supported")


def _resolution_of(names, pattern, what):
    sizes = [int(m.group(1)) for m in map(re.compile(pattern).match, names) if m]
    if not sizes:
        raise BadValue(f"{what}: no layers named like {pattern!r}; is this a StyleGAN2 network of the expected kind?")
    return max(sizes)


def _tf_modconv(p, tf, port, kind):
    """One TF modulated conv `tf` (e.g. synthesis/8x8/Conv0_up) into the port's names under `port`."""
    weight = _tf_conv_weight(p.take(f"{tf}/weight"))[None]
    out = {f"{port}.conv.weight": weight.flip([3, 4]) if kind == "up" else weight,
           f"{port}.conv.modulation.weight": _t(p.take(f"{tf}/mod_weight").T),
           f"{port}.conv.modulation.bias": _t(p.take(f"{tf}/mod_bias")) + 1}
    bias = _t(p.take(f"{tf}/bias"))
    if kind == "rgb":
        return {**out, f"{port}.bias": bias.reshape(1, -1, 1, 1)}
    return {**out, f"{port}.noise.weight": _t(p.take(f"{tf}/noise_strength")).reshape(1),
            f"{port}.activate.bias": bias}


def _tf_generator(net, what):
    """(port g state dict, dlatent_avg or None, conv_clamp) of a TF generator network."""
    kwargs = net.static_kwargs
    _check_tf_kwargs(kwargs, what, "skip")
    params = net.params()
    resolution = kwargs.get("resolution") or _resolution_of(params, r"synthesis/(\d+)x\d+/", what)
    for name in list(params):  # older files name tRGB layers by level of detail
        match = re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(.*)", name)
        if match:
            res = resolution >> int(match.group(1))
            params[f"synthesis/{res}x{res}/ToRGB/{match.group(2)}"] = params.pop(name)
    p = _Consumed(params, what)
    lr_scale = kwargs.get("mapping_lrmul", 0.01) / PORT_LR_MLP
    n_mlp = sum(1 for k in params if re.fullmatch(r"mapping/Dense\d+/weight", k))
    state = {}
    for i in range(n_mlp):
        state[f"style.{i + 1}.weight"] = _t(p.take(f"mapping/Dense{i}/weight").T) * lr_scale
        state[f"style.{i + 1}.bias"] = _t(p.take(f"mapping/Dense{i}/bias")) * lr_scale
    state["input.input"] = _t(p.take("synthesis/4x4/Const/const"))
    state.update(_tf_modconv(p, "synthesis/4x4/Conv", "conv1", "conv"))
    state.update(_tf_modconv(p, "synthesis/4x4/ToRGB", "to_rgb1", "rgb"))
    kernel = _kernel(tuple(kwargs.get("resample_kernel", DEFAULT_FILTER)), 4)
    for i, res in enumerate(2 ** r for r in range(3, resolution.bit_length())):
        state.update(_tf_modconv(p, f"synthesis/{res}x{res}/Conv0_up", f"convs.{2 * i}", "up"))
        state.update(_tf_modconv(p, f"synthesis/{res}x{res}/Conv1", f"convs.{2 * i + 1}", "conv"))
        state.update(_tf_modconv(p, f"synthesis/{res}x{res}/ToRGB", f"to_rgbs.{i}", "rgb"))
        state[f"convs.{2 * i}.conv.blur.kernel"] = kernel.clone()
        state[f"to_rgbs.{i}.upsample.kernel"] = kernel.clone()
    for j in range(2 * resolution.bit_length() - 5):
        state[f"noises.noise_{j}"] = _t(p.take(f"synthesis/noise{j}"))
    dlatent_avg = _t(p.take("dlatent_avg")) if "dlatent_avg" in params else None
    if "synthesis/lod" in params:
        p.take("synthesis/lod")  # progressive-growing state, fixed at 0 in StyleGAN2
    p.check_all_used()
    return state, dlatent_avg, kwargs.get("conv_clamp")


def _tf_discriminator(net, what):
    """(port d state dict, conv_clamp, mbstd group size, num_fp16_res) of a TF discriminator network."""
    kwargs = net.static_kwargs
    _check_tf_kwargs(kwargs, what, "resnet")
    params = net.params()
    resolution = kwargs.get("resolution") or _resolution_of(params, r"(\d+)x\d+/", what)
    for name in list(params):
        match = re.fullmatch(r"FromRGB_lod(\d+)/(.*)", name)
        if match:
            res = resolution >> int(match.group(1))
            params[f"{res}x{res}/FromRGB/{match.group(2)}"] = params.pop(name)
    p = _Consumed(params, what)
    conv = lambda name: _tf_conv_weight(p.take(name))  # noqa: E731
    dense = lambda name: _t(p.take(name).T)  # noqa: E731  (TF dense [in, out] -> torch [out, in])
    state = {"convs.0.0.weight": conv(f"{resolution}x{resolution}/FromRGB/weight"),
             "convs.0.1.bias": _t(p.take(f"{resolution}x{resolution}/FromRGB/bias"))}
    kernel = _kernel(tuple(kwargs.get("resample_kernel", DEFAULT_FILTER)), 1)
    for k, res in enumerate((resolution >> i for i in range(resolution.bit_length() - 3)), start=1):
        tf = f"{res}x{res}"
        state.update({f"convs.{k}.conv1.0.weight": conv(f"{tf}/Conv0/weight"),
                      f"convs.{k}.conv1.1.bias": _t(p.take(f"{tf}/Conv0/bias")),
                      f"convs.{k}.conv2.0.kernel": kernel.clone(),
                      f"convs.{k}.conv2.1.weight": conv(f"{tf}/Conv1_down/weight"),
                      f"convs.{k}.conv2.2.bias": _t(p.take(f"{tf}/Conv1_down/bias")),
                      f"convs.{k}.skip.0.kernel": kernel.clone(),
                      f"convs.{k}.skip.1.weight": conv(f"{tf}/Skip/weight")})
    state.update({"final_conv.0.weight": conv("4x4/Conv/weight"), "final_conv.1.bias": _t(p.take("4x4/Conv/bias")),
                  "final_linear.0.weight": dense("4x4/Dense0/weight"),
                  "final_linear.0.bias": _t(p.take("4x4/Dense0/bias")),
                  "final_linear.1.weight": dense("Output/weight"), "final_linear.1.bias": _t(p.take("Output/bias"))})
    p.check_all_used()
    # the TF release's default group: 4
    return state, kwargs.get("conv_clamp"), kwargs.get("mbstd_group_size", 4), kwargs.get("num_fp16_res", 0)


def _tf_checkpoint(data, path):
    if isinstance(data, TFNetwork):
        nets = {"g_ema": data}
    elif len(data) == 3 and all(isinstance(n, TFNetwork) for n in data):
        nets = dict(zip(("g", "d", "g_ema"), data))
    else:
        raise BadValue(f"{path}: a TensorFlow pickle holds (G, D, Gs) or a single network, not {len(data)} objects")
    g_ema, latent_avg, conv_clamp = _tf_generator(nets["g_ema"], f"{path} Gs")
    if latent_avg is None:
        raise BadValue(f"{path} Gs has no dlatent_avg; is it a generator?")
    ckpt = {"g_ema": g_ema, "latent_avg": latent_avg}
    nvidia = {"format": "tensorflow", "conv_clamp": conv_clamp, "d_conv_clamp": None, "mbstd_group": 4,
              "num_fp16_res": nets["g_ema"].static_kwargs.get("num_fp16_res", 0), "d_num_fp16_res": 0}
    if "g" in nets:
        ckpt["g"] = _tf_generator(nets["g"], f"{path} G")[0]
        ckpt["d"], nvidia["d_conv_clamp"], nvidia["mbstd_group"], nvidia["d_num_fp16_res"] = _tf_discriminator(
            nets["d"], f"{path} D")
    return {**ckpt, "nvidia": nvidia}


# ---- stylegan2-ada-pytorch pickles (parameter names of its training/networks.py)


def _ada_layer_clamp(net, what):
    """The one conv_clamp of a network's conv layers (the skip connections have none)."""
    clamps = {m.attr("conv_clamp") for name, m in net.modules().items()
              if m.class_name in ("SynthesisLayer", "ToRGBLayer", "Conv2dLayer") and not name.endswith("skip")}
    if len(clamps) > 1:
        raise BadValue(f"{what}: layers with different conv_clamp values {sorted(map(str, clamps))} are not supported")
    return clamps.pop() if clamps else None


def _ada_filter(t, name):
    f = t.take(name).float().sum(0)
    return tuple((f / f.sum()).tolist())


def _check_filters(t, resample_filter, what):
    """Every layer's copy of the FIR filter is the one filter the port layout stores per network."""
    for name in [k for k in t if k.endswith("resample_filter")]:
        if _ada_filter(t, name) != resample_filter:
            raise BadValue(f"{what}: {name} differs from the other layers' FIR filter; not supported")


def _ada_modconv(t, ada, port, kind):
    out = {f"{port}.conv.weight": t.take(f"{ada}.weight").float()[None],
           f"{port}.conv.modulation.weight": t.take(f"{ada}.affine.weight").float(),
           f"{port}.conv.modulation.bias": t.take(f"{ada}.affine.bias").float()}
    bias = t.take(f"{ada}.bias").float()
    if kind == "rgb":
        return {**out, f"{port}.bias": bias.reshape(1, -1, 1, 1)}
    return {**out, f"{port}.noise.weight": t.take(f"{ada}.noise_strength").float().reshape(1),
            f"{port}.activate.bias": bias}


def _check_ada_kwargs(net, what, architecture):
    kwargs = net.init_kwargs
    inner = {**kwargs, **dict(kwargs.get("synthesis_kwargs") or {})}
    if kwargs.get("c_dim", 0):
        raise BadValue(f"{what}: conditional labels (c_dim={kwargs['c_dim']}) are not supported")
    if inner.get("architecture", architecture) != architecture:
        raise BadValue(f"{what}: the {inner['architecture']!r} architecture is not supported (only {architecture!r})")
    for layer in net.modules().values():
        if layer.attr("activation", "lrelu") not in ("lrelu", "linear"):
            raise BadValue(f"{what}: activation {layer.attr('activation')!r} is not supported (only 'lrelu')")
        if layer.class_name == "SynthesisLayer" and layer.attr("use_noise") is False:
            raise BadValue(f"{what}: use_noise=False is not supported")
    return inner


def _ada_generator(net, what):
    """(port g state dict, w_avg, conv_clamp, num_fp16_res) of a stylegan2-ada-pytorch Generator holder."""
    if net.class_name != "Generator":
        raise BadValue(f"{what} is a {net.class_name}, not a Generator")
    inner = _check_ada_kwargs(net, what, "skip")
    t = _Consumed(net.tensors(), what)
    modules = net.modules()
    resolution = _resolution_of(t, r"synthesis\.b(\d+)\.", what)
    n_mlp = sum(1 for k in t if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    state = {}
    for i in range(n_mlp):
        lr_scale = float(modules[f"mapping.fc{i}"].attr("bias_gain", 1.0)) / PORT_LR_MLP
        state[f"style.{i + 1}.weight"] = t.take(f"mapping.fc{i}.weight").float() * lr_scale
        state[f"style.{i + 1}.bias"] = t.take(f"mapping.fc{i}.bias").float() * lr_scale
    state["input.input"] = t.take("synthesis.b4.const").float()[None]
    state.update(_ada_modconv(t, "synthesis.b4.conv1", "conv1", "conv"))
    state.update(_ada_modconv(t, "synthesis.b4.torgb", "to_rgb1", "rgb"))
    noise = [t.take("synthesis.b4.conv1.noise_const")]
    resample_filter = _ada_filter(t, "synthesis.b4.resample_filter")
    for i, res in enumerate(2 ** r for r in range(3, resolution.bit_length())):
        block = f"synthesis.b{res}"
        state.update(_ada_modconv(t, f"{block}.conv0", f"convs.{2 * i}", "up"))
        state.update(_ada_modconv(t, f"{block}.conv1", f"convs.{2 * i + 1}", "conv"))
        state.update(_ada_modconv(t, f"{block}.torgb", f"to_rgbs.{i}", "rgb"))
        noise += [t.take(f"{block}.conv0.noise_const"), t.take(f"{block}.conv1.noise_const")]
        kernel = _kernel(_ada_filter(t, f"{block}.resample_filter"), 4)
        state.update({f"convs.{2 * i}.conv.blur.kernel": kernel, f"to_rgbs.{i}.upsample.kernel": kernel.clone()})
    state.update({f"noises.noise_{j}": n.float()[None, None] for j, n in enumerate(noise)})
    _check_filters(t, resample_filter, what)
    w_avg = t.take("mapping.w_avg").float()
    t.check_all_used()
    return state, w_avg, _ada_layer_clamp(net, what), inner.get("num_fp16_res", 0)


def _ada_discriminator(net, what):
    """(port d state dict, conv_clamp, mbstd group size or None for the whole batch, num_fp16_res) of a
    Discriminator holder."""
    if net.class_name != "Discriminator":
        raise BadValue(f"{what} is a {net.class_name}, not a Discriminator")
    num_fp16_res = _check_ada_kwargs(net, what, "resnet").get("num_fp16_res", 0)
    t = _Consumed(net.tensors(), what)
    resolution = _resolution_of(t, r"b(\d+)\.", what)
    state = {"convs.0.0.weight": t.take(f"b{resolution}.fromrgb.weight").float(),
             "convs.0.1.bias": t.take(f"b{resolution}.fromrgb.bias").float()}
    for k, res in enumerate((resolution >> i for i in range(resolution.bit_length() - 3)), start=1):
        kernel = _kernel(_ada_filter(t, f"b{res}.resample_filter"), 1)
        state.update({f"convs.{k}.conv1.0.weight": t.take(f"b{res}.conv0.weight").float(),
                      f"convs.{k}.conv1.1.bias": t.take(f"b{res}.conv0.bias").float(),
                      f"convs.{k}.conv2.0.kernel": kernel,
                      f"convs.{k}.conv2.1.weight": t.take(f"b{res}.conv1.weight").float(),
                      f"convs.{k}.conv2.2.bias": t.take(f"b{res}.conv1.bias").float(),
                      f"convs.{k}.skip.0.kernel": kernel.clone(),
                      f"convs.{k}.skip.1.weight": t.take(f"b{res}.skip.weight").float()})
    state.update({"final_conv.0.weight": t.take("b4.conv.weight").float(),
                  "final_conv.1.bias": t.take("b4.conv.bias").float(),
                  "final_linear.0.weight": t.take("b4.fc.weight").float(),
                  "final_linear.0.bias": t.take("b4.fc.bias").float(),
                  "final_linear.1.weight": t.take("b4.out.weight").float(),
                  "final_linear.1.bias": t.take("b4.out.bias").float()})
    _check_filters(t, _ada_filter(t, f"b{resolution}.resample_filter"), what)
    t.check_all_used()
    mbstd = net.modules().get("b4.mbstd")
    return state, _ada_layer_clamp(net, what), None if mbstd is None else mbstd.attr("group_size"), num_fp16_res


def _ada_checkpoint(data, path):
    g_ema, w_avg, conv_clamp, num_fp16_res = _ada_generator(data["G_ema"], f"{path} G_ema")
    ckpt = {"g_ema": g_ema, "latent_avg": w_avg}
    nvidia = {"format": "stylegan2-ada-pytorch", "conv_clamp": conv_clamp, "d_conv_clamp": None, "mbstd_group": 4,
              "num_fp16_res": num_fp16_res, "d_num_fp16_res": 0}
    if isinstance(data.get("G"), PersistentModule):
        ckpt["g"] = _ada_generator(data["G"], f"{path} G")[0]
    if isinstance(data.get("D"), PersistentModule):
        ckpt["d"], nvidia["d_conv_clamp"], nvidia["mbstd_group"], nvidia["d_num_fp16_res"] = _ada_discriminator(
            data["D"], f"{path} D")
    return {**ckpt, "nvidia": nvidia}
