"""Break the kernels on purpose, one mutation at a time, and show which CPU-harness tests catch each.

    python bench/kernel_mutations.py          # about a minute of compiling per mutation, on 2 cores

Each mutation edits a kernel header, runs the harness tests of that kernel (slow ones included) in a scratch
build cache, and restores the header. Exits non-zero if a mutation goes uncaught by the test named for it.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPFIRDN2D, BIAS_ACT = "cuda_ops/upfirdn2d_kernel.cuh", "cuda_ops/bias_act_kernel.cuh"
UP_TESTS, BA_TESTS = "tests/test_upfirdn2d_kernel_cpu.py", "tests/test_bias_act_kernel_cpu.py"

# (name, header, original text, mutated text, test files to run, the test that must fail)
MUTATIONS = [
    ("first_tap off by one", UPFIRDN2D, "return r == 0 ? 0 : up - r;", "return r == 0 ? 0 : up - r + 1;",
     UP_TESTS, "test_kernel_matches_reference"),
    ("flip inverted", UPFIRDN2D, "p.flip ?", "!p.flip ?", UP_TESTS, "test_kernel_matches_reference"),
    ("plane offset in 32 bits", UPFIRDN2D, "x + plane * p.in_h * p.in_w", "x + (int)plane * p.in_h * p.in_w",
     UP_TESTS, "test_input_over_2_31_elements"),
    ("tanh'' sign flipped", BIAS_ACT, "d2 = -2 * t * d1;", "d2 = 2 * t * d1;", BA_TESTS,
     "test_kernel_matches_reference"),
    ("bias index ignores step", BIAS_ACT, "b[(i / step) % nb]", "b[i % nb]", BA_TESTS,
     "test_kernel_matches_reference"),
]


def failed_tests(test_file, cache):
    """Names of the tests in test_file that fail (slow ones included), with their parameters."""
    env = dict(os.environ, LAYERED_GAN_CACHE=cache, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", test_file],
                          cwd=ROOT, env=env, text=True, capture_output=True)
    return sorted(set(re.findall(r"^FAILED \S+::(\S+)", proc.stdout, re.M)))


def summary(failures):
    """Each failing test function, with how many of its parametrized cases failed."""
    counts = collections.Counter(f.split("[")[0] for f in failures)
    return ", ".join(f"`{name}`" + (f" ({k} cases)" if k > 1 else "") for name, k in sorted(counts.items()))


def main():
    caught_all = True
    with tempfile.TemporaryDirectory() as cache:
        for test_file in (UP_TESTS, BA_TESTS):
            failures = failed_tests(test_file, cache)
            print(f"unmutated: {test_file}: {'all pass' if not failures else failures}", flush=True)
            caught_all &= not failures
        print("\n| mutation | edit | failing tests |\n|---|---|---|")
        for name, header, original, mutated, test_file, must_fail in MUTATIONS:
            path = os.path.join(ROOT, header)
            with open(path) as fh:
                source = fh.read()
            assert original in source, f"{name}: {original!r} not in {header}"
            try:
                with open(path, "w") as fh:
                    fh.write(source.replace(original, mutated))
                failures = failed_tests(test_file, cache)
            finally:
                with open(path, "w") as fh:
                    fh.write(source)
            caught = any(f.split("[")[0] == must_fail for f in failures)
            caught_all &= caught
            print(f"| {name}{'' if caught else ' (NOT CAUGHT)'} | `{original}` -> `{mutated}` | "
                  f"{summary(failures) or 'none'} |", flush=True)
    return 0 if caught_all else 1


if __name__ == "__main__":
    sys.exit(main())
