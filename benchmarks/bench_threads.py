"""Benchmark: does `course.py train` choose its thread count well, idle and with a core busy?

    python benchmarks/bench_threads.py [--repeats 3] [--epochs 3]

For the course's default model and a 128-wide one, with 0 and then 1 core kept busy by another process, the
whole command `course.py train --epochs E` on the bundled corpus is timed (wall clock, interpreter start and
tokenizer included) with the default (a short probe picks the thread count) and with each fixed `--threads`,
the settings taking turns. The table shows the medians and default / best: the target is <= 1.2 in every row.
The checkpoints go to a temporary folder, never into this repository.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

from _common import ROOT, busy_cores, environment, interleave, median, table, verdict

TARGET = 1.2
MODELS = {"course default (64 wide)": [], "128 wide": ["--d_model", "128", "--d_ff", "512"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    fixed = sorted({1, cores})
    chosen: dict[str, list[str]] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def train(flags: list[str], key: str):
            def run():
                out = subprocess.run([sys.executable, "course.py", "train", "--epochs", str(args.epochs),
                                      "--checkpoint", os.path.join(tmp, "ckpt"), *flags],
                                     cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
                if out.returncode != 0:
                    raise SystemExit(out.stdout + out.stderr)
                found = re.search(r"on cpu, (\d+) threads?", out.stdout)
                chosen.setdefault(key, []).append(found.group(1) if found else "?")
            return run

        for busy in (0, 1):
            for model, flags in MODELS.items():
                tasks = {"default": train(flags, f"{busy}{model}")}
                for n in fixed:
                    tasks[f"--threads {n}"] = train([*flags, "--threads", str(n)], f"{busy}{model}{n}")
                with busy_cores(busy):
                    times = interleave(tasks, args.repeats)
                medians = {name: median(t) for name, t in times.items()}
                best_name = min((n for n in medians if n != "default"), key=medians.get)
                ratio = medians["default"] / medians[best_name]
                picked = "/".join(sorted(set(chosen[f"{busy}{model}"])))
                rows.append([model, busy, f"{medians['default']:.1f}", picked,
                             *(f"{medians[f'--threads {n}']:.1f}" for n in fixed), best_name.split()[-1],
                             f"{ratio:.2f}", verdict(ratio, TARGET, higher_is_better=False)])
    headers = ["model", "busy cores", "default s", "default chose", *(f"--threads {n} s" for n in fixed),
               "best", "default/best", f"<= {TARGET}"]
    print(environment())
    print(f"course.py train --epochs {args.epochs} on the bundled corpus, median of {args.repeats}, wall clock")
    print(table(headers, rows))


if __name__ == "__main__":
    main()
