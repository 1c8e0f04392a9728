"""Benchmark: `python course.py train` on a 50 MB text: time of each phase and peak memory.

    python benchmarks/bench_scale.py [--mb 50] [--steps 1000] [--threads N] [--keep DIR]

How it works. The script first writes a text of --mb megabytes into a temporary directory: the bundled
tinyshakespeare (../shared/data), or data/corpus_en.txt when that is absent, repeated with light variation so
that it is not one text said again and again: every copy shuffles the paragraphs, and about one word in
twenty is replaced by a new word glued from the halves of two others, so the tokenizer meets many distinct
words, as in a real large text. The file is plain ASCII-compatible UTF-8.
`course.py train` has no "stop after N steps" flag, so a child process (this script with --child) runs the
same functions it calls, in the same order, on that file: read and decode the file; step 11's prepare_data
(BPE training of step 1, encoding, the compact uint16 array and the split of step 2); step 8's GPT with
course.py's default settings (4 layers, 4 heads, 64 wide, d_ff 256, block 64, BPE vocabulary 512); step 9's
configure_optimizer and train() (batch 16, 30 epochs asked), whose callback raises a private exception after
--steps steps. Tokenizer.train and Tokenizer.encode are wrapped only to note when they start and end. The
child prints when each phase ends; the parent samples the resident memory (RSS) of the child and anything it
starts, with psutil, twenty times a second, and reports each phase's duration and peak.
Targets: every phase completes, and the peak stays under 2 GB.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, SHARED_DATA, environment, optional, table, verdict

TARGET_GB = 2.0
SOURCES = [SHARED_DATA / "tinyshakespeare.txt", ROOT / "data" / "corpus_en.txt"]


def write_text(path: Path, megabytes: float, seed: int = 0) -> str:
    """Write about `megabytes` MB of varied text built from the first source that exists; return its name."""
    source = next(p for p in SOURCES if p.is_file())
    base = source.read_text(encoding="utf-8")
    paragraphs = [p for p in re.split(r"\n\s*\n", base) if p.strip()]
    vocabulary = sorted({w for w in re.findall(r"[A-Za-z]{4,}", base)})
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(paragraphs)
            words = "\n\n".join(paragraphs).split(" ")
            for i in rng.sample(range(len(words)), len(words) // 20):
                a, b = rng.choice(vocabulary), rng.choice(vocabulary)
                words[i] = a[: len(a) // 2 + 1] + b[len(b) // 2:]  # "father" + "morning" -> "fatning"
            chunk = " ".join(words) + "\n\n"
            if written + len(chunk) > target:  # the last copy: cut it at a line's end near the target
                chunk = chunk[:chunk.rfind("\n", 0, target - written) + 1] or chunk[:target - written]
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
    return source.name


def child(path: str, steps: int, threads: int | None) -> None:
    """The phases of `course.py train` with its default settings, printing a JSON line as each one ends."""
    def mark(phase: str, **extra) -> None:
        print(json.dumps({"phase": phase, "t": time.time(), **extra}), flush=True)

    import torch

    from solutions import step01_tokenizer, step11_own_model
    from solutions.step03_embeddings import GPTConfig
    from solutions.step08_gpt import GPT
    from solutions.step09_training import TrainConfig, configure_optimizer, train

    if threads:
        torch.set_num_threads(threads)
    mark("start python, import torch and the steps", threads=torch.get_num_threads())
    text = Path(path).read_bytes().decode("utf-8")  # what kata/train.py's read_text does
    mark("read and decode the file", chars=len(text))

    Tokenizer = step01_tokenizer.Tokenizer
    original_train, original_encode = Tokenizer.train, Tokenizer.encode

    def noted_train(self, *args, **kwargs):
        original_train(self, *args, **kwargs)
        mark("BPE training (step 1)")

    def noted_encode(self, *args, **kwargs):
        ids = original_encode(self, *args, **kwargs)
        mark("encoding (step 1)", tokens=len(ids))
        return ids

    Tokenizer.train, Tokenizer.encode = noted_train, noted_encode
    tokenizer, train_data, val_data = step11_own_model.prepare_data(text, 512, 0.1)
    mark("uint16 array and split (step 2)", dtype=str(train_data.dtype), nbytes=train_data.nbytes + val_data.nbytes)

    config = GPTConfig(block_size=64, vocab_size=tokenizer.vocab_size, n_layer=4, n_head=4, n_embd=64, d_ff=256)
    model = GPT(config)
    tconf = TrainConfig()  # course.py train's defaults: 30 epochs, batch 16, lr 3e-4, seed 1337
    optimizer = configure_optimizer(model, tconf.lr, tconf.weight_decay)
    mark("GPT and optimizer (steps 8, 9)")

    class Enough(Exception):
        pass

    def stop_after(event: dict) -> None:
        if event["kind"] == "step" and event["step"] >= steps:
            raise Enough

    try:
        train(model, train_data, val_data, tconf, callback=stop_after, optimizer=optimizer)
    except Enough:
        pass
    mark(f"first {steps} training steps (step 9)", tokens=steps * tconf.batch_size * config.block_size)


def tree_rss(process) -> int:
    """Resident bytes of a process and all its descendants (0 for any that has just ended)."""
    psutil = sys.modules["psutil"]
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="size of the generated text, in MB")
    parser.add_argument("--steps", type=int, default=1000, help="training steps before stopping")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the child (default: torch's)")
    parser.add_argument("--keep", type=Path, default=None, help="write the text here and keep it")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.threads)
        return 0
    psutil = optional("psutil", "it samples the memory of the process tree")
    print(environment({"psutil": psutil.__version__}))

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "big.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        source = write_text(path, args.mb)
        print(f"wrote {path.stat().st_size / 1e6:.1f} MB from {source} in {time.perf_counter() - start:.0f} s")

        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), "--steps", str(args.steps)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        samples: list[tuple[float, int]] = []
        began = time.time()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        watched = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), tree_rss(watched)))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        marks = [json.loads(line) for line in proc.stdout if line.startswith("{")]
        code = proc.wait()
        done.set()
        sampler.join()

    rows = []
    previous = began
    for m in marks:
        peak = max((rss for t, rss in samples if previous <= t <= m["t"] + 0.05), default=0)
        detail = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                           for k, v in m.items() if k not in ("phase", "t"))
        seconds = m["t"] - previous
        if "tokens" in m and "training" in m["phase"]:
            detail += f" ({m['tokens'] / seconds:,.0f} tokens/s)"
        rows.append([m["phase"], f"{seconds:.1f}", f"{peak / 2**20:,.0f}", detail])
        previous = m["t"]
    peak = max((rss for _, rss in samples), default=0)
    rows.append(["whole run", f"{previous - began:.1f}", f"{peak / 2**20:,.0f}", ""])
    print()
    print(f"`course.py train` phases on a {args.mb:g} MB text (child process exit code {code}), peak RSS of the "
          f"process tree sampled every 50 ms")
    print()
    print(table(["phase", "seconds", "peak MiB", "detail"], rows, align="lrrl"))
    print()
    finished = code == 0 and len(marks) == 7
    print(f"all phases complete: {'yes' if finished else 'NO'}; peak {peak / 1e9:.2f} GB ({peak / 2**30:.2f} GiB), "
          f"target under {TARGET_GB:g} GB: {verdict(peak / 1e9, TARGET_GB, higher_is_better=False)}")
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
