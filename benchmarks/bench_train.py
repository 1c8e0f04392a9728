"""Benchmark: training throughput of the reference GPT against Hugging Face's GPT2LMHeadModel, same size.

    python benchmarks/bench_train.py [--repeats 7] [--steps 20] [--threads default,1] [--busy 1]

One training step is forward, loss, backward, gradient clipping to norm 1.0 and an AdamW step, on both sides:
  ours:   solutions.step09_training.train_step, with the optimizer of configure_optimizer (AdamW, fused where
          PyTorch offers it; weight decay 0.1 on the matrices only)
  theirs: GPT2LMHeadModel(input_ids, labels=..., shift_labels=...) for its own loss, loss.backward(),
          torch.nn.utils.clip_grad_norm_(..., 1.0) (Hugging Face's Trainer clips at 1.0 by default) and
          the very same optimizer: configure_optimizer on its parameters (the same AdamW implementation,
          lr, betas and weight decay on the matrices only), so that the ratio measures the models alone.
Both models are the same network: GPT2Config with n_inner = d_ff, activation "gelu_new" (GPT-2's tanh GELU),
every dropout 0, LayerNorm eps 1e-5 and its default attention implementation (printed); our initial weights
are copied into it (with the mapping that tests/test_gpt2_equivalence.py proves exact), and both read the
same random batches, so their first losses agree (printed as a check).
Tokens per second = batch_size * block_size * steps / time.
Each thread setting runs both models after a warm-up; blocks of --steps steps alternate between them.
--busy N keeps N cores busy with endless loops during the measurement, as another program would: it shows
how each thread setting copes with a shared CPU. Target: ours / theirs >= 1.2 tokens per second.
"""

import argparse
import sys
import warnings

from _common import busy_cores, environment, hf_copy, interleave, median, optional, ratio_range, table, verdict

import torch

from solutions.step08_gpt import GPT, GPTConfig
from solutions.step09_training import configure_optimizer, train_step

TARGET = 1.2
SIZES = {
    # name: (GPTConfig fields, batch size)
    "128 wide, batch 12": (dict(n_layer=4, n_head=4, n_embd=128, d_ff=512, block_size=64, vocab_size=512), 12),
    "course default, 64 wide, batch 16": (dict(n_layer=4, n_head=4, n_embd=64, d_ff=256, block_size=64,
                                               vocab_size=512), 16),
}
LR, BETAS, WEIGHT_DECAY, MAX_NORM = 3e-4, (0.9, 0.95), 0.1, 1.0


def default_adamw_kind(optimizer) -> str:
    """Which implementation torch.optim.AdamW runs with foreach=None and fused=None on these parameters."""
    if optimizer.defaults.get("fused"):
        return "fused"
    if optimizer.defaults.get("foreach") is not None:
        return "foreach" if optimizer.defaults["foreach"] else "for-loop"
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        params = [p for g in optimizer.param_groups for p in g["params"]]
        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
        return "foreach (default)" if foreach else "for-loop (default)"
    except ImportError:
        return "default"


def measure(fields: dict, batch_size: int, steps: int, repeats: int, warmup: int) -> dict:
    """Tokens per second of both sides (lists, one per round), their first losses, the kind of AdamW each
    runs and Hugging Face's attention implementation."""
    torch.manual_seed(0)
    config = GPTConfig(**fields, dropout=0.0)
    ours = GPT(config).train()
    theirs = hf_copy(ours).train()
    ours_opt = configure_optimizer(ours, LR, WEIGHT_DECAY, BETAS)
    theirs_opt = configure_optimizer(theirs, LR, WEIGHT_DECAY, BETAS)  # the same optimizer on both sides
    T = config.block_size
    g = torch.Generator().manual_seed(1)
    windows = torch.randint(0, config.vocab_size, (64, batch_size, T + 1), generator=g)
    # The same (x, y) for both, y being x shifted by one, contiguous as get_batch makes them.
    batches = [(w[:, :-1].contiguous(), w[:, 1:].contiguous()) for w in windows]
    state = {"ours": 0, "theirs": 0}

    def ours_steps(n):
        losses = []
        for _ in range(n):
            x, y = batches[state["ours"] % len(batches)]
            state["ours"] += 1
            losses.append(train_step(ours, ours_opt, x, y, MAX_NORM))
        return losses

    def theirs_steps(n):
        losses = []
        for _ in range(n):
            x, y = batches[state["theirs"] % len(batches)]
            state["theirs"] += 1
            theirs_opt.zero_grad(set_to_none=True)
            loss = theirs(input_ids=x, labels=y, shift_labels=y).loss  # y is already shifted
            loss.backward()
            torch.nn.utils.clip_grad_norm_(theirs.parameters(), MAX_NORM)
            theirs_opt.step()
            losses.append(loss.item())
        return losses

    first = (ours_steps(1)[0], theirs_steps(1)[0])  # the same weights and batch: the same loss
    ours_steps(warmup)
    theirs_steps(warmup)
    times = interleave({"ours": lambda: ours_steps(steps), "theirs": lambda: theirs_steps(steps)}, repeats)
    tokens = steps * batch_size * T
    return {"ours": [tokens / t for t in times["ours"]], "theirs": [tokens / t for t in times["theirs"]],
            "first": first, "attn": theirs.config._attn_implementation,
            "adamw": (default_adamw_kind(ours_opt), default_adamw_kind(theirs_opt))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds per side (median shown)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per side first")
    parser.add_argument("--threads", default="default,1",
                        help="comma-separated thread counts; 'default' is torch's own choice")
    parser.add_argument("--busy", type=int, default=0, help="cores kept busy by another process meanwhile")
    args = parser.parse_args()
    transformers = optional("transformers", "the peer model")
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    print(environment({"transformers": transformers.__version__}))
    default_threads = torch.get_num_threads()
    settings = [default_threads if t.strip() == "default" else int(t) for t in args.threads.split(",")]

    rows, notes = [], []
    for name, (fields, batch_size) in SIZES.items():
        for threads in settings:
            torch.set_num_threads(threads)
            with busy_cores(args.busy):
                r = measure(fields, batch_size, args.steps, args.repeats, args.warmup)
            ours, theirs = median(r["ours"]), median(r["theirs"])
            ratio = ours / theirs
            label = f"{threads}" + (" (default)" if threads == default_threads else "")
            label += f", {args.busy} core busy" if args.busy else ""
            rows.append([name, label, f"{ours:,.0f}", f"{theirs:,.0f}", f"{ratio:.3f}",
                         ratio_range(r["ours"], r["theirs"]), f">={TARGET}", verdict(ratio, TARGET)])
            notes.append(f"{name}, {threads} thread(s): first loss ours {r['first'][0]:.5f}, "
                         f"theirs {r['first'][1]:.5f}; AdamW ours {r['adamw'][0]}, theirs {r['adamw'][1]}; "
                         f"Hugging Face attention: {r['attn']}")
    torch.set_num_threads(default_threads)
    print()
    print(f"Training throughput, tokens per second (forward + backward + clip + AdamW step), median of "
          f"{args.repeats} interleaved rounds of {args.steps} steps; block 64, vocab 512, 4 layers, 4 heads")
    print()
    print(table(["size", "threads", "ours tok/s", "HF tok/s", "ours/HF", "range", "target", ""], rows))
    print()
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
