"""Benchmark: how good a model the reference trains on tinyshakespeare in 3 minutes of wall time on a CPU.

    python benchmarks/bench_quality.py [--minutes 3] [--vocab 512] [--n_layer 4] [--n_embd 128] ...

Everything is the steps' own code: the BPE tokenizer of step 1, the uint16 token arrays and random batches of
step 2, the GPT of step 8, and step 9's configure_optimizer, lr_at (warm-up and cosine), train_step (AdamW,
clipping at 1.0). The text is split by characters, the first 90% to train and the last 10% to validate (the
split nanoGPT's character-level Shakespeare uses), and the tokenizer learns its merges from the training
part only. A few untimed steps on a scratch model measure the speed, so that the cosine schedule ends when
the time is up; the loop stops at the time limit in any case. The validation loss is then measured on every
token of the validation text (windows of block_size side by side), in nats per token, and turned into bits
per character: loss x (validation tokens / validation characters) / ln 2.
For comparison, nanoGPT's published CPU recipe for character-level Shakespeare (4 layers, 4 heads, 128 wide,
block 64, batch 12, 2000 iterations) ends near 1.88 nats = 2.71 bits per character.
Target: below 2.4 bits per character in 3 minutes.
"""

import argparse
import math
import sys
import time

from _common import SHARED_DATA, environment, table, verdict

import numpy as np
import torch

from solutions.step01_tokenizer import Tokenizer
from solutions.step02_data import as_token_array, get_batch
from solutions.step08_gpt import GPT, GPTConfig
from solutions.step09_training import configure_optimizer, lr_at, train_step
from solutions.step10_generation import generate

TARGET_BPC = 2.4
NANOGPT_BPC = 1.88 / math.log(2)
DATA = SHARED_DATA / "tinyshakespeare.txt"


@torch.no_grad()
def loss_on(model: GPT, data: np.ndarray) -> tuple[float, int]:
    """(mean loss in nats per token, number of tokens predicted) over every token of data, in windows of
    block_size side by side (the last, shorter one included)."""
    model.eval()
    T = model.config.block_size
    total, count = 0.0, 0
    for i in range(0, len(data) - 1, T):
        chunk = torch.from_numpy(data[i:i + T + 1].astype(np.int64))[None]  # (1, up to T + 1)
        _, loss = model(chunk[:, :-1], chunk[:, 1:])
        n = chunk.size(1) - 1
        total += loss.item() * n
        count += n
    model.train()
    return total / count, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="wall time of the training loop")
    parser.add_argument("--vocab", type=int, default=1024, help="BPE vocabulary size")
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--n_embd", type=int, default=128)
    parser.add_argument("--d_ff", type=int, default=None, help="default 4 * n_embd")
    parser.add_argument("--block", type=int, default=64, help="block_size, in tokens")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} is not there (this benchmark trains on tinyshakespeare; see ../shared/data)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    print(environment())

    text = DATA.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    train_text, val_text = text[:cut], text[cut:]
    start = time.perf_counter()
    tokenizer = Tokenizer()
    tokenizer.train(train_text, args.vocab)
    train_data = as_token_array(tokenizer.encode(train_text), tokenizer.vocab_size)
    val_data = as_token_array(tokenizer.encode(val_text), tokenizer.vocab_size)
    tokenize_s = time.perf_counter() - start
    val_tokens_per_char = len(val_data) / len(val_text)

    config = GPTConfig(block_size=args.block, vocab_size=tokenizer.vocab_size, n_layer=args.n_layer,
                       n_head=args.n_head, n_embd=args.n_embd, d_ff=args.d_ff or 4 * args.n_embd,
                       dropout=args.dropout)
    batches = torch.Generator().manual_seed(args.seed)

    # Speed first, on a scratch model, so that the learning-rate schedule can end exactly at the time limit.
    scratch = GPT(config)
    scratch_opt = configure_optimizer(scratch, args.lr)
    for i in range(25):
        if i == 5:
            t0 = time.perf_counter()
        x, y = get_batch(train_data, args.block, args.batch, generator=batches)
        train_step(scratch, scratch_opt, x, y)
    step_s = (time.perf_counter() - t0) / 20
    budget = args.minutes * 60
    total_steps = int(budget / step_s)
    warmup = max(1, total_steps // 20)
    del scratch, scratch_opt

    torch.manual_seed(args.seed)
    model = GPT(config)
    optimizer = configure_optimizer(model, args.lr)
    print(f"\n{model.num_params():,} parameters; about {total_steps} steps of {step_s * 1000:.0f} ms planned "
          f"({args.batch * args.block / step_s:,.0f} tokens/s)")
    began = time.perf_counter()
    step, losses, next_report = 0, [], 30.0
    while step < total_steps and time.perf_counter() - began < budget:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.lr, warmup, total_steps)
        x, y = get_batch(train_data, args.block, args.batch, generator=batches)
        losses.append(train_step(model, optimizer, x, y))
        step += 1
        if time.perf_counter() - began >= next_report:
            print(f"  {next_report:4.0f} s: step {step}, train loss {np.mean(losses[-50:]):.3f}", flush=True)
            next_report += 30.0
    train_s = time.perf_counter() - began

    val_loss, n_predicted = loss_on(model, val_data)
    bpc = val_loss * val_tokens_per_char / math.log(2)
    epochs = step * args.batch * args.block / len(train_data)

    print()
    print(f"tinyshakespeare: {len(train_text):,} training and {len(val_text):,} validation characters; BPE with "
          f"{tokenizer.vocab_size} tokens learned and both parts encoded in {tokenize_s:.1f} s; "
          f"validation: {len(val_data):,} tokens, {1 / val_tokens_per_char:.3f} characters per token")
    print(f"model: {args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, d_ff {config.d_ff}, block "
          f"{args.block}, batch {args.batch}, lr {args.lr:g} (warm-up {warmup} steps, cosine to lr / 10), "
          f"dropout {args.dropout:g}, {torch.get_num_threads()} thread(s)")
    print(f"trained {step} steps in {train_s:.0f} s ({epochs:.1f} epochs of the training tokens, "
          f"{step * args.batch * args.block / train_s:,.0f} tokens/s); final train loss (last 50 steps) "
          f"{np.mean(losses[-50:]):.3f}")
    print()
    print(table(["model", "val nats/token", "val nats/char", "val bits/char", "target", ""], [
        ["ours, this run", f"{val_loss:.3f}", f"{val_loss * val_tokens_per_char:.3f}", f"{bpc:.3f}",
         f"<{TARGET_BPC}", verdict(bpc, TARGET_BPC, higher_is_better=False)],
        ["nanoGPT char-level CPU recipe (published)", "", "1.88", f"{NANOGPT_BPC:.2f}", "", ""],
    ]))
    print(f"\n(validation loss over all {n_predicted:,} predicted tokens, windows of {args.block} side by side)")

    g = torch.Generator().manual_seed(0)
    prompt = torch.tensor([tokenizer.encode("\n")], dtype=torch.long)
    out = generate(model, prompt, 200, temperature=0.8, top_k=40, generator=g)
    print("\nA sample (200 tokens, temperature 0.8, top-k 40):\n")
    print(tokenizer.decode(out[0, 1:].tolist()).strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
