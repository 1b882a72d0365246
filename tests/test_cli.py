"""The `layered-gan` entry point: every command listed with --help, and a user's mistake is one line on stderr with
exit code 2 and no traceback, in every subcommand and in the train.py / encode.py scripts; a bug keeps its
traceback."""

import json
import os
import subprocess
import sys

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layered_gan import cli
from layered_gan.cli import COMMANDS, main
from layered_gan.config import load_config
from layered_gan.errors import BadValue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subcommands():
    """[(path, command)] of every leaf command: ["generate"], ["directions", "find"], ..."""
    found = []
    for name, command in COMMANDS.items():
        if isinstance(command, click.Group):
            found += [([name, sub], command.commands[sub]) for sub in sorted(command.commands)]
        else:
            found.append(([name], command))
    return found


def test_help_lists_every_command_and_each_has_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)
    for path, command in subcommands() + [([name], group) for name, group in COMMANDS.items()
                                          if isinstance(group, click.Group)]:
        result = CliRunner().invoke(main, path + ["--help"])
        assert result.exit_code == 0 and "--help" in result.stdout, (path, result.output)
        assert result.stdout.startswith(f"Usage: main {' '.join(path)}"), (path, result.stdout[:80])


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """tmp: missing (nothing there), not_a_checkpoint.pt (text), other_kind.pt (a checkpoint of no kind we read),
    images/ (one PNG), other_synthetic/ (a manifest of another dataset), out/ (a folder that does not exist yet)."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "not_a_checkpoint.pt").write_text("not a checkpoint")
    torch.save({"format": "something else", "weights": torch.zeros(2)}, tmp / "other_kind.pt")
    (tmp / "images").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp / "images" / "a.png")
    (tmp / "other_synthetic").mkdir()
    (tmp / "other_synthetic" / "manifest.json").write_text(json.dumps({"version": 0}))
    return {"tmp": str(tmp), "missing": str(tmp / "missing"), "ckpt": str(tmp / "not_a_checkpoint.pt"),
            "kind": str(tmp / "other_kind.pt"),
            "images": str(tmp / "images"), "other_synthetic": str(tmp / "other_synthetic"), "out": str(tmp / "out")}


# (kind, args with {placeholders} of `paths`, what the one error line must name). Every subcommand has at least one
# "path" case (missing, of the wrong kind, or in the way) and one "value" case (a bad value, config key or type, or
# option combination); the next test keeps the table complete.
CASES = [
    ("path", ["train", "--cfg", "no_such_config"], "no_such_config"),
    ("path", ["train", "--cfg", "demo", "--set", "model.init={missing}", "--out", "{out}"], "model.init"),
    ("value", ["train", "--cfg", "demo", "--set", "loss.nope=1", "--out", "{out}"], "'nope'"),
    ("value", ["train", "--cfg", "demo", "--set", "model.resolution=abc", "--out", "{out}"],
     "model.resolution must be a number"),
    ("value", ["train", "--cfg", "demo", "--set", "model.resolution=48", "--out", "{out}"], "model.resolution = 48: expected a power of two"),
    ("value", ["train", "--cfg", "demo", "--set", "schedule.batch=0", "--out", "{out}"], "schedule.batch = 0: expected a positive integer"),
    ("value", ["train", "--cfg", "demo", "--set", "nokey", "--out", "{out}"], "key=value"),
    ("path", ["generate", "--ckpt", "{missing}", "--out", "{out}"], "--ckpt {missing} does not exist"),
    ("path", ["generate", "--ckpt", "{ckpt}", "--out", "{out}"], "--ckpt: checkpoint {ckpt} could not be read"),
    ("value", ["generate", "--ckpt", "{ckpt}", "--seeds", "a-b", "--out", "{out}"], "--seeds"),
    ("path", ["encode", "--ckpt", "{missing}", "--images", "{images}", "--out", "{out}"],
     "--ckpt {missing} does not exist"),
    ("path", ["encode", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}"], "--ckpt: checkpoint {ckpt}"),
    ("path", ["encode", "--ckpt", "{kind}", "--images", "{images}", "--out", "{out}"],
     "--ckpt {kind} is neither a run of this toolkit"),
    ("value", ["encode", "--ckpt", "{ckpt}", "--out", "{out}"], "--images"),
    ("value", ["encode", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}", "--amortized",
               "--encoder", "{ckpt}"], "--amortized"),
    ("value", ["encode", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}", "--batch", "1"], "--batch"),
    ("value", ["encode", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}", "--chunk", "0"], "--chunk"),
    ("path", ["evaluate", "--pred", "{missing}", "--gt", "{images}", "--out", "{out}"],
     "--pred: dataset path {missing}"),
    ("path", ["evaluate", "--pred", "{images}", "--gt", "{missing}", "--out", "{out}"],
     "--gt: dataset path {missing}"),
    ("value", ["evaluate", "--pred", "{images}", "--gt", "{images}", "--out", "{out}", "--missing", "maybe"],
     "--missing"),
    ("path", ["score-generated", "--ckpt", "{missing}"], "--ckpt {missing} does not exist"),
    ("value", ["score-generated", "--ckpt", "{ckpt}", "--num", "0"], "--num"),
    ("path", ["baselines", "--images", "{missing}", "--gt", "{images}", "--out", "{out}"],
     "--images: dataset path {missing}"),
    ("value", ["baselines", "--synthetic", "--images", "{images}", "--gt", "{images}", "--out", "{out}"],
     "--synthetic"),
    ("value", ["baselines", "--images", "{images}", "--gt", "{images}", "--out", "{out}", "--coverage", "0"],
     "--coverage"),
    ("path", ["benchmarks", "--dataset", "ecssd", "--root", "{missing}", "--out", "{out}"], "{missing}"),
    ("value", ["benchmarks", "--dataset", "ecssd", "--root", "{images}", "--split", "train", "--out", "{out}"],
     "--split"),
    ("value", ["benchmarks", "--dataset", "imagenet", "--root", "{images}", "--out", "{out}"], "--dataset"),
    ("path", ["segment", "--model", "{missing}", "--images", "{images}", "--out", "{out}"],
     "--model: checkpoint {missing}"),
    ("path", ["segment", "--model", "{ckpt}", "--images", "{images}", "--out", "{out}"], "--model: checkpoint {ckpt}"),
    ("path", ["segment", "--model", "{kind}", "--images", "{images}", "--out", "{out}"],
     "--model: {kind} is not a segmenter checkpoint"),
    ("value", ["segment", "--model", "{ckpt}", "--images", "{images}", "--out", "{out}", "--threshold", "half"],
     "--threshold"),
    ("path", ["distill", "--ckpt", "{missing}", "--out", "{out}"], "{missing} does not exist"),
    ("path", ["distill", "--directions", "{kind}", "--out", "{out}"], "{kind} is not a directions file"),
    ("path", ["distill", "--pairs", "{missing}", "--real-images", "{images}", "--real-masks", "{images}",
              "--out", "{out}"], "--pairs {missing}"),
    ("value", ["distill", "--out", "{out}"], "give --ckpt"),
    ("value", ["distill", "--ckpt", "{ckpt}", "--lighter", "1", "--out", "{out}"], "--lighter go with --directions"),
    ("value", ["distill", "--ckpt", "{ckpt}", "--seeds", "x", "--out", "{out}"], "--seeds"),
    ("path", ["pairs", "--ckpt", "{missing}", "--num", "1", "--out", "{out}"], "{missing} does not exist"),
    ("value", ["pairs", "--ckpt", "{ckpt}", "--num", "0", "--out", "{out}"], "--num"),
    ("path", ["prepare", "{missing}", "{out}", "--size", "32"], "dataset path {missing} does not exist"),
    ("path", ["prepare", "{images}", "{images}", "--size", "32"], "{images} already exists"),
    ("value", ["prepare", "{images}", "{out}", "--size", "0"], "--size"),
    ("path", ["synthetic", "--out", "{other_synthetic}", "--count", "1", "--test-count", "1", "--workers", "1"],
     "{other_synthetic} holds a different synthetic dataset"),
    ("value", ["synthetic", "--resolution", "16"], "--resolution"),
    ("value", ["synthetic", "--count", "0"], "--count"),
    ("path", ["directions", "find", "--ckpt", "{missing}", "--method", "voynov", "--out", "{out}"],
     "{missing} does not exist"),
    ("path", ["directions", "find", "--ckpt", "{kind}", "--method", "melas", "--out", "{out}"],
     "{kind} is neither a run of this toolkit"),
    ("value", ["directions", "find", "--ckpt", "{ckpt}", "--method", "nope", "--out", "{out}"], "--method"),
    ("value", ["directions", "find", "--ckpt", "{ckpt}", "--method", "voynov", "--out", "{out}", "--steps", "0"],
     "--steps"),
    ("path", ["directions", "anchors", "--ckpt", "{missing}", "--images", "{images}", "--out", "{out}"],
     "--ckpt {missing} does not exist"),
    ("value", ["directions", "anchors", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}", "--num", "0"],
     "--num"),
    ("path", ["directions", "masks", "--direction", "{missing}", "--num", "1", "--out", "{out}"],
     "{missing} does not exist"),
    ("value", ["directions", "masks", "--direction", "{ckpt}", "--num", "1", "--out", "{out}", "--format", "tiff"],
     "--format"),
    ("path", ["directions", "masks", "--direction", "{kind}", "--num", "1", "--out", "{out}"],
     "{kind} is not a directions file"),
    ("path", ["directions", "score", "--direction", "{missing}"], "--direction: checkpoint {missing}"),
    ("value", ["directions", "score", "--direction", "{ckpt}", "--rows", "some"], "--rows"),
    ("path", ["labels4free", "sample", "--ckpt", "{missing}", "--num", "1", "--out", "{out}"],
     "--ckpt {missing} does not exist"),
    ("value", ["labels4free", "sample", "--ckpt", "{ckpt}", "--num", "0", "--out", "{out}"], "--num"),
    ("path", ["labels4free", "project", "--ckpt", "{missing}", "--images", "{images}", "--out", "{out}"],
     "--ckpt {missing} does not exist"),
    ("value", ["labels4free", "project", "--ckpt", "{ckpt}", "--images", "{images}", "--out", "{out}", "--batch", "0"],
     "--batch"),
    ("path", ["labels4free", "trgb-ssim", "--ckpt", "{missing}", "--out", "{out}"], "--ckpt {missing} does not exist"),
    ("path", ["labels4free", "trgb-ssim", "--ckpt", "{kind}", "--out", "{out}"], "--ckpt {kind} is neither"),
    ("value", ["labels4free", "trgb-ssim", "--ckpt", "{ckpt}", "--out", "{out}", "--num", "0"], "--num"),
    ("path", ["labels4free", "bg-gradients", "--ckpt", "{ckpt}", "--out", "{out}"], "--ckpt: checkpoint {ckpt}"),
    ("value", ["labels4free", "bg-gradients", "--ckpt", "{missing}", "--out", "{out}", "--box", "0,0,1"], "--box"),
    ("path", ["fid", "--ckpt", "{missing}"], "--ckpt {missing} does not exist"),
    ("value", ["fid", "--ckpt", "{ckpt}", "--features", "pixels"], "--features"),
    ("value", ["fid", "--ckpt", "{ckpt}", "--num", "1"], "--num"),
    ("path", ["demo", "--out", "{ckpt}"], "{ckpt}"),
    ("value", ["demo", "--out", "{out}", "--num", "0"], "--num"),
    ("path", ["convert", "{missing}", "{out}"], "{missing}"),
    ("path", ["convert", "{ckpt}", "{out}"], "{ckpt}"),
    ("value", ["convert", "{ckpt}", "{out}", "--layout", "tf"], "--layout"),
    ("value", ["build-ops", "all"], "unexpected extra argument (all)"),
]
TAKES_NO_PATH = {("build-ops",)}


def test_the_table_covers_every_subcommand_with_a_missing_path_and_a_bad_value():
    for path, _ in subcommands():
        kinds = {kind for kind, args, _ in CASES if args[:len(path)] == path}
        expected = {"value"} if tuple(path) in TAKES_NO_PATH else {"path", "value"}
        assert kinds == expected, f"{' '.join(path)}: only {kinds}"


@pytest.mark.parametrize("kind, args, names", CASES,
                         ids=[f"{i}-{'-'.join(a[:2])}-{k}" for i, (k, a, _) in enumerate(CASES)])
def test_a_user_mistake_is_one_line_with_exit_code_2(paths, kind, args, names):
    args = [a.format(**paths) for a in args]
    result = CliRunner().invoke(main, args)
    lines = result.stderr.strip().splitlines()
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, (result.output, result.exception)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"main {args[0]}") and ": error: " in lines[0], lines[0]
    assert names.format(**paths) in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not os.path.exists(paths["out"])  # nothing was written


@pytest.mark.parametrize("script, args, names", [
    ("train.py", ["--cfg", "no_such_config"], "--cfg 'no_such_config'"),
    ("encode.py", ["--ckpt", "/nonexistent/run", "--images", "/nonexistent/images", "--out", "/nonexistent/out"],
     "--ckpt /nonexistent/run does not exist"),
])
def test_the_scripts_report_a_user_mistake_in_one_line(script, args, names):
    proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{script}: error: ") and names in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_group_without_a_command_shows_its_help():
    for path in ([], ["directions"], ["labels4free"]):
        result = CliRunner().invoke(main, path)
        assert result.exit_code == 0 and result.stdout.startswith("Usage:") and "Commands:" in result.stdout


def test_set_values_keep_their_kind():
    assert load_config("demo", ['schedule.batch={"8": 128, "16": 64}'])["schedule"]["batch"] == {"8": 128, "16": 64}
    assert load_config("perturb_base", ["schedule.batch=16"])["schedule"]["batch"] == 16  # tables and numbers mix
    assert load_config("demo", ["model.init=null", "schedule.lr=1"])["schedule"]["lr"] == 1
    for item, message in (("schedule=3", "schedule is a section"), ("loss.type=5", "loss.type must be a string"),
                          ("data.hflip=1", "data.hflip must be a boolean")):
        with pytest.raises(BadValue, match=message):
            load_config("demo", [item])


def test_python_dash_m_layered_gan_is_the_entry_point():
    proc = subprocess.run([sys.executable, "-m", "layered_gan", "generate", "--ckpt", "/nonexistent"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "layered-gan generate: error: Missing option '--out'" in proc.stderr


def test_a_bug_keeps_its_traceback(paths, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(cli, "load_run", broken)
    result = CliRunner().invoke(main, ["generate", "--ckpt", paths["ckpt"], "--out", paths["out"]])
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug of ours"
    assert result.exit_code == 1 and "error:" not in result.stderr
    script = ("import layered_gan.runs as r\n"
              "def broken(*args, **kwargs): raise RuntimeError('a bug of ours')\n"
              "r.load_run = broken\n"
              "from layered_gan.cli import main\n"
              "main(prog_name='layered-gan')\n")
    proc = subprocess.run([sys.executable, "-c", script, "generate", "--ckpt", paths["ckpt"], "--out", paths["out"]],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RuntimeError: a bug of ours" in proc.stderr


def _one_error_line(result, path):
    """The single stderr line of a refused command (exit code 2, no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, (result.output, result.exception)
    assert lines[0].startswith(f"main {' '.join(path)}: error: ") and "Traceback" not in result.output, lines[0]
    return lines[0]


DEVICE_COMMANDS = [path for path, command in subcommands() if any(p.name == "device" for p in command.params)]


def test_every_command_with_device_refuses_cuda_without_a_gpu_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert ["train"] in DEVICE_COMMANDS and ["encode"] in DEVICE_COMMANDS
    for path in DEVICE_COMMANDS:
        line = _one_error_line(CliRunner().invoke(main, [*path, "--device", "cuda"]), path)
        assert "--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is False; torch " in line, line
        assert line.endswith("; use --device cpu"), line
    line = _one_error_line(CliRunner().invoke(main, ["train", "--cfg", "smoke", "--device", "cuda"]), ["train"])
    assert "--device cuda: no CUDA GPU is visible" in line
    line = _one_error_line(CliRunner().invoke(main, ["train", "--device", "gpu"]), ["train"])
    assert "--device 'gpu' is not a torch device" in line
    assert os.listdir(tmp_path) == []  # nothing was written


def test_the_device_defaults_to_cuda_only_where_a_gpu_is_visible(monkeypatch):
    seen = []
    for available in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        context = cli.generate.make_context("generate", ["--ckpt", "x", "--out", "y"])
        seen.append(context.params["device"])
    assert seen == ["cuda", "cpu"]
    help_text = " ".join(CliRunner().invoke(main, ["generate", "--help"]).stdout.split())
    assert "[default: (cuda if a GPU is visible, else cpu)]" in help_text


@pytest.mark.parametrize("device, local_world, gpus, names", [
    ("cuda:0", 2, 2, "--device cuda:0: under torchrun each of the 2 processes on this machine takes its own GPU"),
    ("cuda", 4, 2, "--device cuda: 4 processes on this machine (torchrun --nproc_per_node) but 2 GPUs visible"),
], ids=["explicit_index", "more_processes_than_gpus"])
def test_train_under_torchrun_refuses_a_device_mismatch_in_one_line(tmp_path, monkeypatch, device, local_world, gpus,
                                                                    names):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    for name, value in (("WORLD_SIZE", local_world), ("RANK", 0), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", local_world)):
        monkeypatch.setenv(name, str(value))
    result = CliRunner().invoke(main, ["train", "--cfg", "smoke", "--device", device, "--out", str(tmp_path / "out")])
    assert names in _one_error_line(result, ["train"])
    assert not (tmp_path / "out").exists()
