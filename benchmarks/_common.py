"""What every benchmark here shares: importing the project, optional peers, interleaved timing, tables.

A benchmark is a plain script that prints a table (ours, the peer, the ratio), never a timed assertion in the
test suite. Each measurement is repeated, ours and the peer taking turns, so that a machine which gets busier
or quieter halfway through slows both alike; the tables show medians.
"""

import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def optional(module: str, why: str):
    """Import an optional peer, or say that it is missing and end the script with exit code 0."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"skipped: `{module}` is not installed ({why}); pip install -e '.[bench]'")
        sys.exit(0)


def hf_copy(model):
    """Hugging Face's GPT2LMHeadModel of our model's configuration, holding our model's weights (in eval mode).

    The mapping of names and layouts is the one the test suite proves exact (tests/test_gpt2_equivalence.py):
    GPT2Config with n_inner = d_ff, activation "gelu_new" (GPT-2's tanh GELU), every dropout 0, eps 1e-5.
    """
    from tests.test_gpt2_equivalence import load_into_hf

    return load_into_hf(model)


def median(values) -> float:
    return statistics.median(values)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def interleave(tasks: dict, repeats: int) -> dict[str, list[float]]:
    """Run every task `repeats` times, taking turns, and return each one's list of seconds.

    tasks: {name: function of no arguments}. The order alternates from round to round (A B, then B A), so
    neither side always runs right after the other, in its warm caches.
    """
    names = list(tasks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds, _ = timed(tasks[name])
            times[name].append(seconds)
    return times


def ratio_range(numerators: list[float], denominators: list[float]) -> str:
    """The lowest and highest ratio of the rounds, each round's two numbers paired as they were measured
    (one right after the other): a wide range means that a busy machine disturbed the measurement."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


@contextmanager
def busy_cores(n: int):
    """Keep n CPU cores busy with endless loops in child processes while the block runs, as another program
    would (a browser, a second training, a test suite): how a thread setting copes with sharing the CPU."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        if loops:
            time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned (align: 'l'/'r' each)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "ok" if met else "MISSED"


def environment(extra: dict | None = None) -> str:
    """One paragraph on where the numbers come from: the software, the threads, the machine."""
    import torch

    lines = [f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
             f"{platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
             f"torch.get_num_threads() = {torch.get_num_threads()} at start"]
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines.append(f"load average before the run: {load} (above 0 means another program shares the CPUs)")
    except OSError:
        pass
    for name, version in (extra or {}).items():
        lines.append(f"{name} {version}")
    return "\n".join(lines)
