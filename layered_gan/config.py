"""Configs: JSON files in configs/, a `base` key to inherit from another, and `key=value` overrides.

Values in overrides are parsed as JSON (numbers, true/false, lists, quoted
strings) and fall back to plain strings; nothing is evaluated as code.
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
    """The config `name` (a file path, or a name in configs/) with its bases merged and overrides applied."""
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
        cfg = _merge(load_config(base), cfg)
    for item in overrides:
        cfg = apply_override(cfg, item)
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
    if None not in (old, value) and _kind(old) != _kind(value):
        raise BadValue(f"--set {item!r}: {key} takes a {_kind(old)} (or null), not a {_kind(value)}")
    node[parts[-1]] = value
    return cfg


def _kind(value):
    """The JSON kind of a config value; numbers and per-resolution tables of them ({"8": 128, ...}) are one."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)) or (isinstance(value, dict) and value and all(k.isdigit() for k in value)):
        return "number"
    return {str: "string", list: "list", dict: "section"}[type(value)]
