import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from layered_gan.convert import convert
from layered_gan.errors import BadValue, PathExists, UserError
from layered_gan.cli import convert as convert_command
from layered_gan.networks.layers import ConvLayer, ModulatedConv
from layered_gan.networks.nvidia_pickles import PersistentModule, load_restricted, read_nvidia_pickle
from layered_gan.networks.port import load_port, port_models, read_port_checkpoint
from layered_gan.runs import load_run, load_stylegan2, read_model_file
from layered_gan.training.objectives import make_objective

# Against the fixtures' stored reference outputs (computed on another machine): float32 through ~14 layers of
# 512-channel sums, where another CPU's kernels sum in another order. Measured worst: 1.03e-5 absolute at a value of
# 3.6 (2.8e-6 relative, a 2-core AMD EPYC VM); the tolerance scales with the values and leaves 3.5x headroom.
REFERENCE = dict(atol=1e-5, rtol=1e-5)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "fixtures")
PORT_CKPT = os.path.join(FIXTURES, "rosinality_stylegan2_64.pt")
PORT_REF = os.path.join(FIXTURES, "rosinality_stylegan2_64_reference.pt")
TF_PKL = os.path.join(FIXTURES, "stylegan2_tf_64.pkl")
ADA_PKL = os.path.join(FIXTURES, "stylegan2_ada_64.pkl")


def shared(*paths):
    """The shared fixtures; absent ones skip the test, or fail it under CI=true."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        message = f"shared fixture {os.path.basename(missing[0])} not present (../shared/fixtures)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    return paths


@pytest.fixture(scope="module")
def ref():
    shared(PORT_REF)
    return torch.load(PORT_REF, weights_only=True)


@pytest.fixture(scope="module")
def port():
    shared(PORT_CKPT)
    return load_port(PORT_CKPT, discriminator=True)


# ---- writing pickles in NVIDIA's layouts (the classes they name are stood in for while pickling)


@pytest.fixture
def nvidia_names(monkeypatch):
    """Stand-ins for dnnlib.tflib.network.Network and torch_utils.persistence, so pickle writes their names."""
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network", "torch_utils", "torch_utils.persistence"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class Network:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("the test never unpickles with NVIDIA's code")

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    sys.modules["dnnlib.tflib.network"].Network = Network
    sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return _reconstruct_persistent_obj, (self.meta,)

    return types.SimpleNamespace(Network=Network, Persistent=Persistent)


def _network(names, name, static_kwargs, variables, components=None):
    return names.Network({"version": 4, "name": name, "static_kwargs": static_kwargs, "components": components or {},
                          "build_module_src": "# omitted\n", "build_func_name": name, "variables": variables})


def _tf_conv(weight, up=False):
    """Port [1, O, I, k, k] (up-sampling ones flipped) -> TF [k, k, I, O]."""
    weight = weight.flip([3, 4]) if up else weight
    return weight[0].permute(2, 3, 1, 0).numpy()


def _tf_modconv(g, port, up=False, rgb=False):
    out = [("weight", _tf_conv(g[f"{port}.conv.weight"], up)),
           ("mod_weight", g[f"{port}.conv.modulation.weight"].T.numpy()),
           ("mod_bias", (g[f"{port}.conv.modulation.bias"] - 1).numpy())]
    if rgb:
        return out + [("bias", g[f"{port}.bias"].reshape(-1).numpy())]
    return out + [("noise_strength", np.float32(g[f"{port}.noise.weight"][0])),
                  ("bias", g[f"{port}.activate.bias"].numpy())]


def tf_generator(names, g, dlatent_avg, static, tolod=False):
    """A TF G_main network of a port generator state dict (the release's names and layouts)."""
    n_mlp = sum(1 for k in g if k.startswith("style.") and k.endswith(".weight"))
    num_blocks = sum(1 for k in g if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    resolution = 4 << num_blocks
    rgb_name = (lambda r: f"ToRGB_lod{(resolution // r).bit_length() - 1}") if tolod else (lambda r: f"{r}x{r}/ToRGB")
    mapping = [(f"Dense{i}/weight", g[f"style.{i + 1}.weight"].T.numpy()) for i in range(n_mlp)]
    mapping = [v for i in range(n_mlp) for v in (mapping[i], (f"Dense{i}/bias", g[f"style.{i + 1}.bias"].numpy()))]
    synthesis = [("lod", np.float32(0)), ("4x4/Const/const", g["input.input"].numpy())]
    synthesis += [(f"4x4/Conv/{n}", v) for n, v in _tf_modconv(g, "conv1")]
    synthesis += [(f"{rgb_name(4)}/{n}", v) for n, v in _tf_modconv(g, "to_rgb1", rgb=True)]
    for i in range(num_blocks):
        r = 8 << i
        synthesis += [(f"{r}x{r}/Conv0_up/{n}", v) for n, v in _tf_modconv(g, f"convs.{2 * i}", up=True)]
        synthesis += [(f"{r}x{r}/Conv1/{n}", v) for n, v in _tf_modconv(g, f"convs.{2 * i + 1}")]
        synthesis += [(f"{rgb_name(r)}/{n}", v) for n, v in _tf_modconv(g, f"to_rgbs.{i}", rgb=True)]
    synthesis += [(f"noise{j}", g[f"noises.noise_{j}"].numpy()) for j in range(2 * num_blocks + 1)]
    components = {"mapping": _network(names, "G_mapping", static, mapping),
                  "synthesis": _network(names, "G_synthesis", static, synthesis)}
    return _network(names, "G", static, [("dlatent_avg", dlatent_avg.numpy())], components)


def tf_discriminator(names, d, static):
    num_blocks = sum(1 for k in d if k.endswith(".conv1.0.weight"))
    resolution = 4 << num_blocks
    conv = lambda k: d[k].permute(2, 3, 1, 0).numpy()  # noqa: E731
    v = [(f"{resolution}x{resolution}/FromRGB/weight", conv("convs.0.0.weight")),
         (f"{resolution}x{resolution}/FromRGB/bias", d["convs.0.1.bias"].numpy())]
    for k in range(1, num_blocks + 1):
        r = f"{resolution >> (k - 1)}x{resolution >> (k - 1)}"
        v += [(f"{r}/Conv0/weight", conv(f"convs.{k}.conv1.0.weight")),
              (f"{r}/Conv0/bias", d[f"convs.{k}.conv1.1.bias"].numpy()),
              (f"{r}/Conv1_down/weight", conv(f"convs.{k}.conv2.1.weight")),
              (f"{r}/Conv1_down/bias", d[f"convs.{k}.conv2.2.bias"].numpy()),
              (f"{r}/Skip/weight", conv(f"convs.{k}.skip.1.weight"))]
    v += [("4x4/Conv/weight", conv("final_conv.0.weight")), ("4x4/Conv/bias", d["final_conv.1.bias"].numpy()),
          ("4x4/Dense0/weight", d["final_linear.0.weight"].T.numpy()),
          ("4x4/Dense0/bias", d["final_linear.0.bias"].numpy()),
          ("Output/weight", d["final_linear.1.weight"].T.numpy()), ("Output/bias", d["final_linear.1.bias"].numpy())]
    return _network(names, "D", static, v)


def _static(g, **extra):
    w_dim, z_dim = g["style.1.weight"].shape
    resolution = 4 << sum(1 for k in g if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    n_mlp = sum(1 for k in g if k.startswith("style.") and k.endswith(".weight"))
    return {"latent_size": z_dim, "dlatent_size": w_dim, "resolution": resolution, "num_channels": 3, "label_size": 0,
            "mapping_layers": n_mlp, "fmap_base": 1024, "fmap_max": 32, **extra}


def write_tf(names, path, port_ckpt, dlatent_avg, single=False, tolod=False, g_dlatent_avg=None, **static):
    """The port checkpoint as a TF release pickle: (G, D, Gs), or Gs alone (G's own dlatent_avg: g_dlatent_avg)."""
    gs = tf_generator(names, port_ckpt["g_ema"], dlatent_avg, _static(port_ckpt["g_ema"], **static), tolod)
    if not single:
        g_dlatent_avg = dlatent_avg if g_dlatent_avg is None else g_dlatent_avg
        gs = (tf_generator(names, port_ckpt["g"], g_dlatent_avg, _static(port_ckpt["g"], **static), tolod),
              tf_discriminator(names, port_ckpt["d"], _static(port_ckpt["g"], **static)), gs)
    with open(path, "wb") as fh:
        pickle.dump(gs, fh, protocol=4)
    return str(path)


def write_ada(names, path, data):
    """Holders read from an ADA pickle written back in its layout (persistent modules as reconstructor calls)."""
    def persistent(value):
        if isinstance(value, PersistentModule):
            state = dict(value.state, _modules={k: persistent(m) for k, m in value.state["_modules"].items()})
            return names.Persistent({"type": "class", "version": 6, "module_src": "# omitted\n",
                                     "class_name": value.class_name, "state": state})
        return value

    with open(path, "wb") as fh:
        pickle.dump({k: persistent(v) for k, v in data.items()}, fh)
    return str(path)


def _ada_layers(net, *classes):
    return [m for name, m in net.modules().items() if m.class_name in classes and not name.endswith("skip")]


# ---- the shared fixtures


def test_tf_pickle_converts_to_the_port_file_exactly():
    shared(TF_PKL, PORT_CKPT)
    converted, original = read_nvidia_pickle(TF_PKL), read_port_checkpoint(PORT_CKPT)
    for key in ("g_ema", "g", "d"):
        assert sorted(converted[key]) == sorted(original[key])
        for name, tensor in original[key].items():
            assert torch.equal(converted[key][name], tensor), f"{key} {name}"
    gs = load_restricted(TF_PKL)[2]
    assert torch.equal(converted["latent_avg"], torch.from_numpy(dict(gs.variables)["dlatent_avg"]))


@pytest.mark.parametrize("name", ["tf", "ada"])
@torch.no_grad()
def test_shared_pickles_reproduce_the_reference_images_and_scores(name, ref, port):
    path = shared(TF_PKL if name == "tf" else ADA_PKL)[0]
    G, D = load_stylegan2(path, discriminator=True)
    G_port, D_port, _ = port
    ours, theirs = {**G.state_dict(), **D.state_dict()}, {**G_port.state_dict(), **D_port.state_dict()}
    assert [k for k in theirs if not torch.equal(ours[k], theirs[k])] == ["w_avg"]  # only the truncation centre
    centre = read_nvidia_pickle(path)["latent_avg"]
    assert torch.equal(G.w_avg, centre) and not torch.equal(G.w_avg, G_port.w_avg)
    images = G(ref["z"], noise=ref["noise"])
    torch.testing.assert_close(images, ref["images"], **REFERENCE)
    truncated = G(ref["z"], noise=ref["noise"], truncation=ref["truncation"], truncation_w=ref["mean_w"][0])
    torch.testing.assert_close(truncated, ref["images_truncated"], **REFERENCE)
    torch.testing.assert_close(G(ref["z"], noise=ref["noise"], truncation=0.5),
                               G_port(ref["z"], noise=ref["noise"], truncation=0.5, truncation_w=centre),
                               **REFERENCE)
    mixed = G(ref["z"], ref["z2"], inject_index=ref["inject_index"], noise=ref["noise"])
    torch.testing.assert_close(mixed, ref["images_mixed"], **REFERENCE)
    torch.testing.assert_close(D(ref["images"]), ref["d_scores"], **REFERENCE)
    run = load_run(path)  # what generate and fid load
    G_generate, config = run.G, run.config
    assert config is None and torch.equal(G_generate(ref["z"], noise=ref["noise"]), images)


@torch.no_grad()
def test_ada_pickle_keeps_its_settings_and_fixed_noise(ref):
    shared(ADA_PKL)
    G, D, noise = port_models(read_model_file(ADA_PKL), ADA_PKL, discriminator=True)
    assert D.mbstd_group is None  # NVIDIA's converter leaves mbstd_group_size None: the whole batch
    assert all(torch.equal(a, b[:1]) for a, b in zip(noise, ref["noise"]))  # its noise_const buffers
    torch.testing.assert_close(G(ref["z"], noise=noise), ref["images"], **REFERENCE)


# ---- fixtures of our own: TF layout variants, ADA variants


def test_tf_writer_reproduces_the_shared_tf_pickle(tmp_path, nvidia_names):
    shared(TF_PKL, PORT_CKPT)
    fixture = load_restricted(TF_PKL)
    G_avg, Gs_avg = (torch.from_numpy(dict(fixture[i].variables)["dlatent_avg"]) for i in (0, 2))
    ours = load_restricted(write_tf(nvidia_names, tmp_path / "tf.pkl", read_port_checkpoint(PORT_CKPT), Gs_avg,
                                    g_dlatent_avg=G_avg))
    for mine, theirs in zip(ours, fixture):
        a, b = mine.params(), theirs.params()
        assert sorted(a) == sorted(b)
        assert all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in b)


@pytest.mark.parametrize("variant", ["single_gs", "tolod"])
@torch.no_grad()
def test_tf_variants_load_the_same_generator(variant, tmp_path, nvidia_names, ref):
    shared(PORT_CKPT)
    port = read_port_checkpoint(PORT_CKPT)
    path = write_tf(nvidia_names, tmp_path / "v.pkl", port, ref["mean_w"][0], single=variant == "single_gs",
                    tolod=variant == "tolod")
    converted = read_nvidia_pickle(path)
    assert ("d" in converted) == (variant != "single_gs")
    if variant == "tolod":
        assert any("ToRGB_lod" in k for k in load_restricted(path)[2].params())
    G = load_stylegan2(path)
    torch.testing.assert_close(G.w_avg, ref["mean_w"][0])
    torch.testing.assert_close(G(ref["z"], noise=ref["noise"], truncation=ref["truncation"]), ref["images_truncated"],
                               **REFERENCE)
    if variant == "single_gs":
        with pytest.raises(ValueError, match="has no 'd'"):
            load_stylegan2(path, discriminator=True)


def _fp16_variant(data, clamp):
    """The published ADA FFHQ/AFHQ/MetFaces settings: num_fp16_res 4, conv_clamp on every conv layer."""
    for key in ("G", "G_ema", "D"):
        net = data[key]
        kwargs = net.state["_init_kwargs"]
        (kwargs.get("synthesis_kwargs") or kwargs).update(num_fp16_res=4, conv_clamp=clamp)
        for layer in _ada_layers(net, "SynthesisLayer", "ToRGBLayer", "Conv2dLayer"):
            layer.state["conv_clamp"] = clamp
    return data


@torch.no_grad()
def test_fp16_settings_run_in_float32_with_conv_clamp(tmp_path, nvidia_names, ref):
    shared(ADA_PKL)
    path = write_ada(nvidia_names, tmp_path / "fp16.pkl", _fp16_variant(load_restricted(ADA_PKL), 256))
    assert read_nvidia_pickle(path)["nvidia"]["num_fp16_res"] == 4
    G, D = load_stylegan2(path, discriminator=True)
    assert G.synthesis.blocks[-1].conv1.conv_clamp == 256 and G.synthesis.blocks[-1].to_rgb.conv_clamp == 256
    assert D.final_conv.conv_clamp == 256 and D.blocks["64"].conv1.conv_clamp == 256
    assert D.blocks["64"].skip.conv_clamp is None  # NVIDIA's skip connections are not clamped
    images = G(ref["z"], noise=ref["noise"])
    assert images.dtype == torch.float32
    torch.testing.assert_close(images, ref["images"], **REFERENCE)  # 256 is far above these activations
    torch.testing.assert_close(D(ref["images"]), ref["d_scores"], **REFERENCE)
    small = write_ada(nvidia_names, tmp_path / "clamp.pkl", _fp16_variant(load_restricted(ADA_PKL), 0.05))
    G_small = load_stylegan2(small)
    _, features = G_small.synthesis(G_small.styles(ref["z"]), noise=ref["noise"], return_features="all")
    assert max(float(f.abs().max()) for f in features) == pytest.approx(0.05)
    assert not torch.allclose(G_small(ref["z"], noise=ref["noise"]), images, atol=1e-3)


@torch.no_grad()
def test_tf_conv_clamp_is_honoured(tmp_path, nvidia_names, ref):
    shared(PORT_CKPT)
    path = write_tf(nvidia_names, tmp_path / "ada_tf.pkl", read_port_checkpoint(PORT_CKPT), ref["mean_w"][0],
                    num_fp16_res=4, conv_clamp=256)
    G, D = load_stylegan2(path, discriminator=True)
    assert G.synthesis.conv.conv_clamp == 256 and D.conv_clamp == 256
    torch.testing.assert_close(G(ref["z"], noise=ref["noise"]), ref["images"], **REFERENCE)


@torch.no_grad()
def test_conv_clamp_clamps_each_layer_output_after_bias_and_activation():
    x, w, noise = torch.randn(2, 8, 8, 8) * 5, torch.randn(2, 16), torch.randn(2, 1, 16, 16)
    for to_rgb in (False, True):
        free = ModulatedConv(8, 4, 16, kernel_size=1 if to_rgb else 3, up=1 if to_rgb else 2, to_rgb=to_rgb)
        clamped = ModulatedConv(8, 4, 16, kernel_size=1 if to_rgb else 3, up=1 if to_rgb else 2, to_rgb=to_rgb,
                                conv_clamp=0.3)
        clamped.load_state_dict(free.state_dict())
        expected = free(x, w, noise).clamp(-0.3, 0.3)
        assert (expected.abs() == 0.3).any()
        torch.testing.assert_close(clamped(x, w, noise), expected)
    free, clamped = ConvLayer(8, 4, 3, down=2), ConvLayer(8, 4, 3, down=2, conv_clamp=0.3)
    clamped.load_state_dict(free.state_dict())
    torch.testing.assert_close(clamped(x), free(x).clamp(-0.3, 0.3))


def _edit(data, key, kwargs_key, **values):
    kwargs = data[key].state["_init_kwargs"]
    (kwargs[kwargs_key] if kwargs_key else kwargs).update(values)
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: _edit(d, "G_ema", None, c_dim=10), r"conditional labels \(c_dim=10\)"),
    (lambda d: _edit(d, "G_ema", "synthesis_kwargs", architecture="orig"), "the 'orig' architecture"),
    (lambda d: _edit(d, "D", None, architecture="skip"), "the 'skip' architecture"),
    (lambda d: _edit(d, "D", None, c_dim=3), r"conditional labels \(c_dim=3\)"),
])
def test_ada_features_we_lack_are_refused_by_name(edit, message, tmp_path, nvidia_names):
    shared(ADA_PKL)
    path = write_ada(nvidia_names, tmp_path / "feature.pkl", edit(load_restricted(ADA_PKL)))
    with pytest.raises(BadValue, match=message):
        load_stylegan2(path)


@pytest.mark.parametrize("static, message", [({"label_size": 5}, r"conditional labels \(label_size=5\)"),
                                             ({"architecture": "resnet"}, "the 'resnet' architecture")])
def test_tf_features_we_lack_are_refused_by_name(static, message, tmp_path, nvidia_names, ref):
    shared(PORT_CKPT)
    path = write_tf(nvidia_names, tmp_path / "f.pkl", read_port_checkpoint(PORT_CKPT), ref["mean_w"][0], **static)
    with pytest.raises(BadValue, match=message):
        load_stylegan2(path)


# ---- malicious pickles: refused before anything runs


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_malicious_tf_pickles_are_refused_before_anything_runs(tmp_path, nvidia_names):
    marker = tmp_path / "marker"
    evil = _network(nvidia_names, "G", {"resolution": 64}, [("dlatent_avg", _RunsCommand(marker))])
    unknown = _network(nvidia_names, "G", {"resolution": 64}, [("dlatent_avg", types.SimpleNamespace(a=1))])
    for net, name in [(evil, f"{os.system.__module__}.system"), (unknown, "types.SimpleNamespace")]:
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps((net, net, net)))
        with pytest.raises(BadValue, match=f"refused to load {name}"):
            load_stylegan2(str(path))
        assert not marker.exists()
    path.write_bytes(pickle.dumps(_RunsCommand(marker)))  # not even a network around it
    with pytest.raises(UserError, match="refused"):
        convert(str(path), str(tmp_path / "out.pt"))
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_malicious_ada_pickles_are_refused_before_anything_runs(tmp_path, nvidia_names):
    marker = tmp_path / "marker"
    source = f"import os\nos.system('touch {marker}')\n"
    state = {"_parameters": {}, "_buffers": {}, "_modules": {}, "_init_kwargs": {}}
    path = tmp_path / "evil.pkl"
    evil_class = nvidia_names.Persistent({"type": "class", "version": 4, "module_src": source, "class_name": "Evil",
                                          "state": state})
    path.write_bytes(pickle.dumps({"G": evil_class, "D": evil_class, "G_ema": evil_class}))
    with pytest.raises(BadValue, match="refused persistent class 'Evil'"):
        load_stylegan2(str(path))
    # a known class name carrying code: the source is never compiled, and the empty state has nothing to load
    known = nvidia_names.Persistent({"type": "class", "version": 4, "module_src": source, "class_name": "Generator",
                                     "state": state})
    path.write_bytes(pickle.dumps({"G_ema": known}))
    with pytest.raises(BadValue, match="synthesis"):
        load_stylegan2(str(path))
    reduce_in_state = nvidia_names.Persistent({"type": "class", "version": 4, "module_src": "",
                                               "class_name": "Generator",
                                               "state": dict(state, _init_kwargs={"x": _RunsCommand(marker)})})
    path.write_bytes(pickle.dumps({"G_ema": reduce_in_state}))
    with pytest.raises(BadValue, match="refused to load"):
        load_stylegan2(str(path))
    storage = _Call(torch.storage._load_from_bytes, pickle.dumps(_RunsCommand(marker), protocol=2))
    tensor_in_state = nvidia_names.Persistent({"type": "class", "version": 4, "module_src": "",
                                               "class_name": "Generator",
                                               "state": dict(state, _buffers={"w": storage})})
    path.write_bytes(pickle.dumps({"G_ema": tensor_in_state}))
    with pytest.raises(BadValue, match="refused by the weights-only loader"):  # storages are torch files
        load_stylegan2(str(path))
    assert not marker.exists()


def test_files_of_no_known_format_are_refused(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BadValue, match="neither a TensorFlow StyleGAN2 pickle"):
        load_stylegan2(str(path))
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError):
        load_stylegan2(str(path))


# ---- convert


@pytest.mark.parametrize("name", ["tf", "ada"])
@torch.no_grad()
def test_convert_round_trips_through_the_port_loader_and_our_checkpoints(name, tmp_path, ref):
    src = shared(TF_PKL if name == "tf" else ADA_PKL)[0]
    G, D = load_stylegan2(src, discriminator=True)
    for layout in ("port", "ours"):
        out = str(tmp_path / f"{layout}.pt")
        result = CliRunner().invoke(convert_command, [src, out, "--layout", layout])
        assert result.exit_code == 0, result.output
        written = torch.load(out, weights_only=True)
        assert {"port": {"g_ema", "latent_avg", "d"}, "ours": {"config", "G_ema", "D"}}[layout] <= set(written)
        G2, D2 = load_stylegan2(out, discriminator=True)
        torch.testing.assert_close(G2.w_avg, G.w_avg, atol=0, rtol=0)
        torch.testing.assert_close(G2(ref["z"], noise=ref["noise"]), ref["images"], **REFERENCE)
        torch.testing.assert_close(D2(ref["images"]), D(ref["images"]), atol=1e-6, rtol=0)
    with pytest.raises(PathExists):
        convert(src, out, "ours")


def test_model_init_starts_a_perturbgan_run_from_a_pickle():
    src = shared(TF_PKL)[0]
    model = {"resolution": 64, "z_dim": 64, "w_dim": 64, "n_mlp": 2, "channel_base": 2048, "channel_max": 32,
             "init": src}
    cfg = {"mode": "perturb", "model": model, "mixing_prob": 0.0, "perturb": {"shift_range": 0.125, "bg_jitter": 0.0},
           "loss": {"type": "wgan-gp", "gp_lambda": 10.0, "drift": 0.001, "eta": 0.25, "size_weight": 2.0,
                    "binarization_weight": 3.0, "binarize_from": 0}}
    obj = make_objective(cfg)
    torch.manual_seed(0)
    G, D = obj.build()
    fresh_rgb = D.from_rgb["32"].weight.clone()
    obj.initialize(G, D)
    source_G, source_D = load_stylegan2(src, discriminator=True)
    for name, value in source_D.state_dict().items():
        assert torch.equal(D.state_dict()[name], value), name
    assert torch.equal(D.from_rgb["32"].weight, fresh_rgb)  # the fromRGB layers the file lacks stay fresh
    assert torch.equal(G.fg.mapping.layers[1].weight, source_G.mapping.layers[1].weight)
    assert torch.equal(G.bg.synthesis.blocks[-1].conv1.weight, source_G.synthesis.blocks[-1].conv1.weight)
