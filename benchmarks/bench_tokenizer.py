"""Benchmark: the reference tokenizer of step 1 against Hugging Face `tokenizers`, on the same text.

    python benchmarks/bench_tokenizer.py [--repeats 3] [--file ../shared/data/tinyshakespeare.txt]

Both train a byte-level BPE with GPT-2's pre-split to the same vocabulary size (256 bytes + merges), then
encode the whole file with what they learned. Runs are interleaved (ours, theirs, ours, theirs, ...) so that
a busy machine slows both alike; the table shows medians and the ratio ours / theirs (under 1: we are faster).
Targets: training within 5x of Hugging Face, encoding within 3x, in pure Python.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions.step01_tokenizer import Tokenizer  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TARGETS = {"train": 5.0, "encode": 3.0}


def hf_tokenizer(vocab_size: int, text: str):
    """Hugging Face's byte-level BPE, trained on text: GPT-2's pre-split, all 256 bytes, vocab_size tokens."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = HFTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def ours_tokenizer(vocab_size: int, text: str) -> Tokenizer:
    tokenizer = Tokenizer()
    tokenizer.train(text, vocab_size)
    return tokenizer


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the text to train on and encode")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each task (median shown)")
    args = parser.parse_args()
    if not args.file.is_file():
        print(f"skipped: {args.file} is not there (the benchmark needs a text file; see ../shared/data)")
        return 0
    try:
        import tokenizers
    except ImportError:
        print("skipped: Hugging Face `tokenizers` is not installed (pip install -e '.[bench]')")
        return 0

    text = args.file.read_text(encoding="utf-8")
    times: dict[tuple[str, str], list[float]] = {}
    tokens: dict[tuple[str, str], int] = {}
    encoders = {}
    for _ in range(args.repeats):
        for vocab_size in (512, 1024):
            task = f"train to {vocab_size}"
            t, ours = timed(ours_tokenizer, vocab_size, text)
            times.setdefault((task, "ours"), []).append(t)
            t, theirs = timed(hf_tokenizer, vocab_size, text)
            times.setdefault((task, "theirs"), []).append(t)
            if vocab_size == 512:
                encoders = {"ours": ours, "theirs": theirs}
        task = "encode (vocab 512)"
        t, ids = timed(encoders["ours"].encode, text)
        times.setdefault((task, "ours"), []).append(t)
        tokens[(task, "ours")] = len(ids)
        t, encoding = timed(encoders["theirs"].encode, text)
        times.setdefault((task, "theirs"), []).append(t)
        tokens[(task, "theirs")] = len(encoding.ids)

    print(f"BPE tokenizer: {args.file.name} ({len(text.encode('utf-8')):,} bytes), "
          f"median of {args.repeats} interleaved runs")
    print()
    header = f"{'task':<20} {'ours (s)':>9} {'HF (s)':>9} {'ours/HF':>8} {'target':>7}  tokens (ours / HF)"
    print(header)
    print("-" * len(header))
    for task in ("train to 512", "train to 1024", "encode (vocab 512)"):
        ours, theirs = statistics.median(times[(task, "ours")]), statistics.median(times[(task, "theirs")])
        limit = TARGETS["encode" if task.startswith("encode") else "train"]
        ratio = ours / theirs
        verdict = "ok" if ratio <= limit else "MISSED"
        count = f"{tokens[(task, 'ours')]:,} / {tokens[(task, 'theirs')]:,}" if (task, "ours") in tokens else ""
        print(f"{task:<20} {ours:>9.3f} {theirs:>9.3f} {ratio:>7.2f}x {'<=' + str(int(limit)) + 'x':>5} {verdict:<3}"
              f" {count}")
    print()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} CPUs; ours is pure Python on one thread.")
    print(f"tokenizers {tokenizers.__version__} (Rust; RAYON_NUM_THREADS="
          f"{os.environ.get('RAYON_NUM_THREADS', 'default')}). Each encode is the first call on a freshly "
          f"trained tokenizer.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
