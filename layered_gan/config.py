"""Configs: JSON files in configs/, a `base` key to inherit from another, and `key=value` overrides.

Values in overrides are parsed as JSON (numbers, true/false, lists, quoted strings) and fall back to
plain strings; nothing is evaluated as code. An override keeps the type of the value it replaces (a
boolean stays a boolean: `--set data.hflip=False` is refused, `false` is JSON), an object given for a
section sets its keys one by one, and the resolved config is validated (`validate_config`: types, ranges,
known values) before anything runs.
"""

import json
import os

from .errors import BadValue, MissingPath, UnknownKey

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def _merge(base, update):
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(name, overrides=()):
    """The config `name` (a file path, or a name in configs/) with its bases merged and overrides applied,
    validated."""
    return with_overrides(_load(name), overrides)


def with_overrides(cfg, overrides):
    """A copy of cfg with `key=value` overrides applied, validated."""
    for item in overrides:
        cfg = apply_override(cfg, item)
    validate_config(cfg)
    return cfg


def _load(name):
    path = name if name.endswith(".json") or os.sep in name else os.path.join(CONFIG_DIR, f"{name}.json")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json")) if os.path.isdir(CONFIG_DIR) else []
        raise MissingPath(f"--cfg {name!r}: no file {path}; known configs: {', '.join(known) or 'none'}")
    with open(path) as fh:
        try:
            cfg = json.load(fh)
        except json.JSONDecodeError as exc:
            raise BadValue(f"config {path} is not valid JSON: {exc}") from None
    base = cfg.pop("base", None)
    if base:
        cfg = _merge(_load(base), cfg)
    return cfg


def apply_override(cfg, item):
    """Set `a.b=value` in cfg; the key must already exist, so typos fail loudly."""
    if "=" not in item:
        raise BadValue(f"--set {item!r} must look like key=value")
    key, text = item.split("=", 1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    cfg = json.loads(json.dumps(cfg))  # a copy: the caller's dict stays as it was
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise UnknownKey(f"--set {item!r}: {part!r} is not a section of this config")
        node = node[part]
    if parts[-1] not in node:
        raise UnknownKey(f"--set {item!r}: unknown key {parts[-1]!r}; known: {', '.join(sorted(node))}")
    old = node[parts[-1]]
    if key in SECTIONS or (isinstance(old, dict) and key not in PER_RESOLUTION):  # a section: merged key by key
        if not isinstance(value, dict):
            raise BadValue(f"--set {item!r}: {key} is a section; give an object of its keys or set them one by one "
                           f"({', '.join(f'{key}.{k}' for k in sorted(old))})")
        for sub, sub_value in value.items():
            cfg = apply_override(cfg, f"{key}.{sub}={json.dumps(sub_value)}")
        return cfg
    if old is not None and value is not None and _kind(value) not in _kinds(old, key):
        raise BadValue(f"--set {item!r}: {key} must be {' or '.join(_kinds(old, key))} (like {json.dumps(old)}), "
                       f"got {_kind(value)} {json.dumps(value)}")
    node[parts[-1]] = value
    return cfg


SECTIONS = ("data", "data.synthetic", "model", "schedule", "loss", "perturb", "ema", "log", "labels4free")
PER_RESOLUTION = ("schedule.batch", "schedule.lr")  # a number, or {"resolution": number}


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _kinds(old, key):
    if key in PER_RESOLUTION:
        return ("a number", "an object")
    return (_kind(old),)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _power_of_two(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 4 and v & (v - 1) == 0


# key: (check, what is valid). Keys absent from a config are not checked.
_PROBABILITY = (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a positive number")
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0, "a number >= 0")
_COUNT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer")
_COUNT0 = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
_RESOLUTION = (_power_of_two, "a power of two >= 4 (8, 16, 32, ...)")
_BOOL = (lambda v: isinstance(v, bool), "true or false")


def _per_resolution(check):
    ok, what = check
    return (lambda v: ok(v) or (isinstance(v, dict) and bool(v) and all(_power_of_two(int(k)) if k.isdigit() else False
                                                                         for k in v) and all(ok(x) for x in v.values())),
            f"{what}, or an object {{\"resolution\": {what}}}")


def _one_of(*values):
    return (lambda v: v in values, "one of " + ", ".join(json.dumps(x) for x in values))


RULES = {
    "seed": _COUNT0, "workers": _COUNT0, "mixing_prob": _PROBABILITY, "lazy_adam": _BOOL,
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v),
              "two numbers in [0, 1)"),
    "data.hflip": _BOOL, "data.crop": _one_of("random", "center"),
    "data.org_to_crop": (lambda v: _is_number(v) and v >= 1, "a number >= 1"),
    "data.max_images": (lambda v: v is None or _COUNT[0](v), "null or a positive integer"),
    "data.synthetic.family": _one_of("shapes", "horizon"), "data.synthetic.resolution": _RESOLUTION, "data.synthetic.count": _COUNT, "data.synthetic.test_count": _COUNT,
    "model.resolution": _RESOLUTION, "model.z_dim": _COUNT, "model.w_dim": _COUNT, "model.n_mlp": _COUNT,
    "model.channel_base": _COUNT, "model.channel_max": _COUNT, "model.mbstd_group": _COUNT,
    "model.variant": _one_of("two", "shared_mapping", "single"),
    "model.formulation": _one_of("fast", "plain", "fused"), "model.channels_last": _BOOL,
    "model.init_empty_background": _BOOL, "model.discriminator": _one_of("stylegan2", "projected"),
    "model.num_fp16_res": _COUNT0,
    "model.conv_clamp": (lambda v: v is None or (_is_number(v) and v > 0), "null or a positive number"),
    "precision": _one_of("fp32", "fp16", "bf16"),
    "model.projected_resolution": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 64 and v % 32 == 0,
                                   "a multiple of 32, at least 64 (64, 128, 224, ...)"),
    "schedule.start_resolution": _RESOLUTION, "schedule.phase_kimg": _NON_NEGATIVE,
    "schedule.fade_fraction": _PROBABILITY, "schedule.total_kimg": _POSITIVE,
    "schedule.batch": _per_resolution(_COUNT), "schedule.lr": _per_resolution(_POSITIVE),
    "loss.type": _one_of("wgan-gp", "logistic", "hinge"), "loss.gp_lambda": _NON_NEGATIVE, "loss.drift": _NON_NEGATIVE,
    "loss.r1_gamma": _NON_NEGATIVE, "loss.r1_interval": _COUNT, "loss.pl_weight": _NON_NEGATIVE,
    "loss.pl_interval": _COUNT, "loss.eta": _PROBABILITY, "loss.size_weight": _NON_NEGATIVE,
    "loss.binarization_weight": _NON_NEGATIVE, "loss.max_coverage": _PROBABILITY,
    "loss.max_coverage_weight": _NON_NEGATIVE, "loss.binarize_from": _COUNT0, "loss.d_adv_weight": _NON_NEGATIVE,
    "loss.alpha_adv_weight": _NON_NEGATIVE, "loss.fg_coverage_weight": _NON_NEGATIVE, "loss.fg_coverage": _PROBABILITY,
    "loss.bg_coverage_weight": _NON_NEGATIVE, "loss.bg_coverage": _PROBABILITY,
    "perturb.shift_range": (lambda v: _is_number(v) and 0 <= v <= 0.5, "a number in [0, 0.5]"),
    "perturb.bg_jitter": _PROBABILITY, "perturb.shift_draw": _one_of("integer", "rounded"),
    "perturb.jitter_stats": _one_of("image", "channel"), "perturb.mask_terms": _one_of("unshifted", "shifted"),
    "schedule.real_fade": _one_of("fir", "box"),
    "ema.decay": (lambda v: v is None or (_is_number(v) and 0 < v < 1), "null or a number in (0, 1)"),
    "ema.half_life_kimg": _POSITIVE, "ema.rampup": (lambda v: v is None or (_is_number(v) and v >= 0),
                                                    "null or a number >= 0"),
    "log.tick_kimg": _POSITIVE, "log.checkpoint_kimg": _POSITIVE, "log.grid_size": _COUNT,
    "log.fid_kimg": _NON_NEGATIVE, "log.fid_num": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "log.fid_features": _one_of("reference", "inception"),
    "labels4free.truncation": _NON_NEGATIVE, "labels4free.zero": _one_of("const", "conv"),
    "labels4free.alpha_start_resolution": _RESOLUTION, "labels4free.alpha_width": _COUNT,
    "labels4free.alpha_network": _one_of("authors", "compact"), "labels4free.same_latent": _BOOL,
}


def _lookup(cfg, key):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_config(cfg):
    """Refuse a config whose values are of the wrong type or out of range: one BadValue listing every error,
    each naming the key, its value and what is valid."""
    errors = []
    for section in SECTIONS:
        present, value = _lookup(cfg, section)
        if present and not isinstance(value, dict):
            errors.append(f"{section} must be an object (a section of keys), got {json.dumps(value)}")
    for key, (ok, what) in RULES.items():
        present, value = _lookup(cfg, key)
        if present and not ok(value):
            errors.append(f"{key} = {json.dumps(value)}: expected {what}")
    _, discriminator = _lookup(cfg, "model.discriminator")
    _, loss_type = _lookup(cfg, "loss.type")
    if cfg.get("mode") == "labels4free" and loss_type == "wgan-gp":
        errors.append("loss.type = \"wgan-gp\": Labels4Free trains with \"logistic\" (or \"hinge\", projected D)")
    if discriminator == "projected" and loss_type != "hinge":
        errors.append(f"model.discriminator = \"projected\" trains with loss.type = \"hinge\" (Projected GAN), "
                      f"got {json.dumps(loss_type)}")
    if errors:
        raise BadValue("invalid config: " + "; ".join(errors))
