"""Kill a demo run with SIGKILL at random moments, resume it each time, and check that it ends with the weights
of an uninterrupted run and leaves no temporary file (issue 17).

    OMP_NUM_THREADS=1 python bench/soak_resume.py --kills 20 --during-write 5 --kimg 8

One thread, so that runs are bit-for-bit reproducible. A kill "during a checkpoint write" is sent while a
checkpoint temporary (checkpoint.pt.tmp-PID) exists, found by polling the run folder.
"""

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import click
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_command(out, kimg, resume):
    cmd = [sys.executable, "train.py", "--device", "cpu"]
    cmd += ["--resume", out] if resume else ["--cfg", "demo", "--out", out, "--force"]  # killed before a checkpoint
    return cmd + ["--set", f"schedule.total_kimg={kimg}", "--set", "log.checkpoint_kimg=0.064",
                  "--set", "log.tick_kimg=0.5"]


def finished(out, kimg):
    path = os.path.join(out, "checkpoint.pt")
    return os.path.isfile(path) and torch.load(path, weights_only=True)["images_seen"] >= kimg * 1000


def kill_at_random(out, kimg, during_write, rng, log):
    """Start or resume the run, then SIGKILL it: during a checkpoint write, or after a random delay."""
    resume = os.path.isfile(os.path.join(out, "checkpoint.pt"))
    proc = subprocess.Popen(train_command(out, kimg, resume), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + (120 if during_write else rng.uniform(6, 15))
    while proc.poll() is None and time.time() < deadline:
        if during_write and glob.glob(os.path.join(glob.escape(out), "checkpoint.pt.tmp-*")):
            break
        time.sleep(0.0005 if during_write else 0.05)
    hit_write = bool(glob.glob(os.path.join(glob.escape(out), "checkpoint.pt.tmp-*")))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.append("during a write" if hit_write else "between writes")
        return True
    return False


@click.command()
@click.option("--kills", default=20, show_default=True)
@click.option("--during-write", default=5, show_default=True, help="How many kills aim at a checkpoint write.")
@click.option("--kimg", default=8.0, show_default=True, help="The demo run's length.")
@click.option("--seed", default=0, show_default=True)
def main(kills, during_write, kimg, seed):
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="soak-")
    straight, killed = os.path.join(work, "straight"), os.path.join(work, "killed")
    start = time.time()
    subprocess.run(train_command(straight, kimg, False), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    print(f"uninterrupted run: {time.time() - start:.0f} s")
    plan = [True] * during_write + [False] * (kills - during_write)
    rng.shuffle(plan)
    log = []
    for aim_write in plan:
        if finished(killed, kimg):
            break
        kill_at_random(killed, kimg, aim_write, rng, log)
    while not finished(killed, kimg):  # the last stretch, uninterrupted
        resume = os.path.isfile(os.path.join(killed, "checkpoint.pt"))
        subprocess.run(train_command(killed, kimg, resume), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    a = torch.load(os.path.join(straight, "checkpoint.pt"), weights_only=True)
    b = torch.load(os.path.join(killed, "checkpoint.pt"), weights_only=True)
    same = all(torch.equal(a[k][n], b[k][n]) for k in ("G", "G_ema", "D") for n in a[k])
    leftovers = glob.glob(os.path.join(killed, "*.tmp-*")) + glob.glob(os.path.join(killed, "**", "*.tmp-*"))
    print(f"kills: {len(log)} ({log.count('during a write')} during a checkpoint write, "
          f"{log.count('between writes')} between writes)")
    print(f"final weights equal the uninterrupted run's: {same}; images seen {b['images_seen']}")
    print(f"temporary files left: {len(leftovers)}")
    print(f"total {time.time() - start:.0f} s")
    shutil.rmtree(work)
    sys.exit(0 if same and not leftovers else 1)


if __name__ == "__main__":
    main()
