"""Benchmark: do the settings `course.py train` sizes from a text learn about as well as the best learning rate?

    python benchmarks/bench_recipe.py [--only 7KB,40KB,1MB]

For a text of about 7 KB (the start of the bundled English corpus), 40 KB and 1 MB (the start of, and the whole
of, ../shared/data/tinyshakespeare.txt), `course.py train FILE` runs with no settings given (kata/recipe.py
sizes learning rate, block, batch and epochs), then again at each learning rate in {3e-4, 1e-3, 3e-3} with the
block, batch and epochs the rule chose: the same seed, text and number of steps. The table shows the best
validation loss of each run; the target is default <= 1.1 x the best of the three. Checkpoints go to a
temporary folder.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, environment, table, verdict

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
RATES = (3e-4, 1e-3, 3e-3)
TARGET = 1.1


def texts(folder: Path) -> dict[str, Path]:
    english = (ROOT / "data" / "corpus_en.txt").read_text(encoding="utf-8")
    made = {"7KB": english[:7000]}
    if SHAKESPEARE.is_file():
        shakespeare = SHAKESPEARE.read_text(encoding="utf-8")
        made["40KB"] = shakespeare[:40000]
        made["1MB"] = shakespeare
    else:
        print(f"({SHAKESPEARE} is absent: only the 7 KB text is measured)")
    paths = {}
    for name, text in made.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def train(path: Path, folder: Path, *flags: str) -> tuple[float, str, float]:
    """(best validation loss, the settings line, seconds) of one run."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "course.py", "train", str(path), "--reference",
                          "--checkpoint", str(folder / "ckpt"), *flags], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "NO_COLOR": "1"})
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    best = float(re.search(r"best validation loss (\d+\.\d+)", out.stdout).group(1))
    settings = re.search(r"Settings sized for [^\n]*", out.stdout)
    return best, settings.group(0) if settings else "", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="a comma-separated subset of 7KB,40KB,1MB")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, path in texts(folder).items():
            if args.only and name not in args.only.split(","):
                continue
            best_default, settings, seconds = train(path, folder)
            lr = float(re.search(r"lr (\S+) ", settings).group(1))
            block = re.search(r"block (\d+)", settings).group(1)
            batch = re.search(r"batch (\d+)", settings).group(1)
            epochs = re.search(r"(\d+) epochs", settings).group(1)
            steps = re.search(r"about ([\d,]+) steps", settings).group(1)
            fixed = ["--block_size", block, "--batch_size", batch, "--epochs", epochs]
            losses = {}
            for rate in RATES:
                same = abs(rate - lr) < 1e-12
                losses[rate] = best_default if same else train(path, folder, "--lr", f"{rate:g}", *fixed)[0]
            best = min(losses.values())
            ratio = best_default / best
            rows.append([name, f"{path.stat().st_size:,}", f"lr {lr:.0e}, block {block}, batch {batch}, "
                         f"{epochs} epochs", steps, f"{seconds:.0f}", f"{best_default:.3f}",
                         *(f"{losses[r]:.3f}" for r in RATES), f"{ratio:.3f}",
                         verdict(ratio, TARGET, higher_is_better=False)])
    print(environment())
    print("best validation loss (nats per token) at the same steps; the default's learning rate is one of the "
          "three where it equals it (the same run)")
    print(table(["text", "bytes", "the default settings", "steps", "s", "default",
                 *(f"lr {r:g}" for r in RATES), "default/best", f"<= {TARGET}"], rows))


if __name__ == "__main__":
    main()
