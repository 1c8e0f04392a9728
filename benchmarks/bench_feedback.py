"""Benchmark: how fast the learner hears back: `python course.py check N` for every step, and the test suite.

    python benchmarks/bench_feedback.py [--repeats 3] [--suite]

The checks run in a temporary copy of the repository (never in this one: course.py writes progress.json), in
two states: "passing", with the reference of solutions/ copied into exercises/, as a learner who has written
every step correctly; and "failing", with the stubs of kata/stubs/ in exercises/, as a learner who has just
started, every check failing on NotImplementedError. One untimed `course.py check 1` first warms the disk
cache (its cold time is shown below the table). Then each step is timed --repeats times, steps taking turns,
and the table shows the median wall time of the whole command, interpreter start and torch import included.
--suite also times the project's test command, `python -m pytest --solutions -n auto`, in the repository.
Targets: under 3 s per step; under 60 s for the suite.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, environment, median, table, verdict

STEP_TARGET, SUITE_TARGET = 3.0, 60.0
SKIP = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", ".ruff_cache",
                              "progress.json*", "checkpoint*", "backups", "*.egg-info", "build", "dist")


def step_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("step[0-9][0-9]_*.py"))


def course(copy: Path, *args: str) -> tuple[float, int]:
    """(seconds, exit code) of `python course.py ARGS` in the copy, without a terminal."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "course.py", *args], cwd=copy, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, proc.returncode


def measure_state(copy: Path, source: Path, steps: list[int], repeats: int) -> tuple[dict, float, set]:
    """Put `source`'s step files into the copy's exercises/ and time `course.py check N` for every step.

    Returns ({step: [seconds, ...]}, seconds of the first, untimed run, the exit codes seen).
    """
    for f in step_files(source):
        shutil.copyfile(f, copy / "exercises" / f.name)
    first, _ = course(copy, "check", "1")
    times: dict[int, list[float]] = {n: [] for n in steps}
    codes = set()
    for _ in range(repeats):
        for n in steps:
            seconds, code = course(copy, "check", str(n))
            times[n].append(seconds)
            codes.add(code)
    return times, first, codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step's check (median shown)")
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite (about a minute)")
    args = parser.parse_args()
    print(environment())
    steps = [int(f.name[4:6]) for f in step_files(ROOT / "solutions")]

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=SKIP)
        passing, first_passing, codes_passing = measure_state(copy, ROOT / "solutions", steps, args.repeats)
        failing, first_failing, codes_failing = measure_state(copy, ROOT / "kata" / "stubs", steps, args.repeats)

    rows = []
    for n in steps:
        good, bad = median(passing[n]), median(failing[n])
        rows.append([f"step {n}", f"{good:.2f}", f"{bad:.2f}", f"<{STEP_TARGET:g}",
                     verdict(max(good, bad), STEP_TARGET, higher_is_better=False)])
    print()
    print(f"`python course.py check N`, wall seconds, median of {args.repeats} (a temporary copy of the repository)")
    print()
    print(table(["step", "passing", "failing", "target", ""], rows))
    print()
    print(f"exit codes seen: passing {sorted(codes_passing)} (0 expected), failing {sorted(codes_failing)} "
          f"(1 expected)")
    print(f"first, untimed `course.py check 1` in the fresh copy: {first_passing:.1f} s (passing), "
          f"then {first_failing:.1f} s (failing)")

    if args.suite:
        command = [sys.executable, "-m", "pytest", "--solutions", "-n", "auto"]
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"passed|failed", line)),
                       "(no summary line)").strip("= ")
        print()
        print(table(["command", "seconds", "target", "", "result"],
                    [["pytest --solutions -n auto", f"{seconds:.1f}", f"<{SUITE_TARGET:g}",
                      verdict(seconds, SUITE_TARGET, higher_is_better=False), summary]], align="lrrll"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
