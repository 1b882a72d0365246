"""A run's folder: never overwritten by accident, and continued only with the config it was started with.

`train --out DIR` refuses a DIR that holds a run unless asked: `--resume` continues it, `--force` moves it
aside (DIR.old-TIMESTAMP; nothing is deleted). On resume, the config given is compared with the run's:
keys that do not change what is trained (logging intervals, `schedule.total_kimg` to extend a run, the
description, the output folder, loader workers, the numeric `precision`) may change and are recorded in
RUN/config_history.json; any other difference is refused with the differing keys listed.
"""

import glob
import json
import os
import time

from ..checkpoint import checkpoint_file, load_checkpoint
from ..config import PER_RESOLUTION
from ..errors import BadValue, MissingPath, PathExists
from ..files import write_json

SAFE_TO_CHANGE = ("description", "out", "workers", "log.", "schedule.total_kimg", "precision")


def holds_run(folder):
    """Whether `folder` holds a training run (a checkpoint, a config or TensorBoard logs)."""
    return any(os.path.exists(os.path.join(folder, name)) for name in ("checkpoint.pt", "config.json", "tensorboard"))


def move_aside(folder):
    """Rename folder to folder.old-YYYYmmdd-HHMMSS (a new name even when called twice a second); returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = f"{folder.rstrip('/')}.old-{stamp}", 1
    while os.path.exists(target):
        n += 1
        target = f"{folder.rstrip('/')}.old-{stamp}-{n}"
    os.replace(folder, target)
    return target


def check_out(out, resume, force):
    """Refuse to start a fresh run in a folder that holds one (see the module doc); with force, move it aside.
    Returns the folder the old run was moved to, or None."""
    if resume or not holds_run(out):
        return None
    if force:
        return move_aside(out)
    raise PathExists(f"--out {out} holds a run; continue it with --resume {out}, or pass --force to move it aside "
                     f"({out}.old-TIMESTAMP) and start afresh")


def resume_source(resume):
    """(checkpoint file, its run's config) of a --resume RUN (a run folder or checkpoint file)."""
    path = checkpoint_file(resume)
    if not os.path.isfile(path):
        raise MissingPath(f"--resume {resume}: no checkpoint {path}; give a run folder or its checkpoint.pt")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise BadValue(f"--resume {resume}: {path} is not a training checkpoint of this toolkit (no config)")
    return path, state["config"]


def _flatten(cfg, prefix=""):
    """{"a.b": value} for every key; a per-resolution table (config.PER_RESOLUTION) is one value."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" not in PER_RESOLUTION:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old, new):
    """{key: (old value, new value)} for every key whose value differs between two configs."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _safe(key):
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_TO_CHANGE)


def check_resume_config(old, new, resume):
    """Refuse a resumed run whose config differs from its own in keys that change what is trained; return the
    safe changes (see the module doc)."""
    changes = config_changes(old, new)
    unsafe = {k: v for k, v in changes.items() if not _safe(k)}
    if unsafe:
        listed = "; ".join(f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in unsafe.items())
        raise BadValue(f"--resume {resume}: the config differs from the run's in {listed}; only "
                       f"{', '.join(SAFE_TO_CHANGE)} may change when a run is continued")
    return changes


def record_config_history(out, changes):
    """Append the changes of a resumed run to OUT/config_history.json."""
    path = os.path.join(out, "config_history.json")
    history = json.load(open(path)) if os.path.isfile(path) else []
    history.append({"time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "changes": {k: {"old": a, "new": b} for k, (a, b) in changes.items()}})
    write_json(path, history)


def remove_stale_temporaries(out):
    """Temporaries of checkpoint writes that a killed process left behind (checkpoint.pt.tmp-PID)."""
    for tmp in glob.glob(os.path.join(glob.escape(out), "checkpoint.pt.tmp-*")):
        os.remove(tmp)
