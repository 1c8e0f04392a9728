"""Benchmark: generation speed of the reference (step 10, KV cache) against Hugging Face's generate().

    python benchmarks/bench_generate.py [--repeats 7] [--new 256] [--threads default,1] [--busy 1]

Both write --new tokens after the same 16-token prompt, batch 1, sampling from the top 50 tokens:
  ours:   solutions.step10_generation.generate(model, prompt, 256, top_k=50), with its KV cache
  theirs: GPT2LMHeadModel.generate(prompt, do_sample=True, top_k=50, max_new_tokens=256) with its default
          cache, on a copy of our weights (the mapping that tests/test_gpt2_equivalence.py proves exact).
Sizes: the course's default model (4 layers, 4 heads, 64 wide, d_ff 256) and a 128-wide one (d_ff 512), both
with block_size 512 so that all 272 tokens fit: Hugging Face cannot crop a context longer than its position
table, so a comparison must not need cropping. A second table sets ours with its cache against ours without
(every token recomputes the whole context), including the course's real block_size of 64, where the cache
must be refilled once it is full (see next_token_logits). Tokens per second = new tokens / wall time,
prompt included; runs alternate between the sides after one warm-up each. --busy N keeps N cores busy
with endless loops meanwhile, as another program would. Target: ours / theirs >= 1.2.
A greedy run (temperature 0 / do_sample=False) of both shows that they compute the same thing.
"""

import argparse
import sys
import warnings

from _common import busy_cores, environment, hf_copy, interleave, median, optional, ratio_range, table, verdict

import torch

from solutions.step08_gpt import GPT, GPTConfig
from solutions.step10_generation import generate

TARGET = 1.2
PROMPT = 16
SIZES = {
    "course default, 64 wide": dict(n_layer=4, n_head=4, n_embd=64, d_ff=256, block_size=512, vocab_size=512),
    "128 wide": dict(n_layer=4, n_head=4, n_embd=128, d_ff=512, block_size=512, vocab_size=512),
}
CROPPING = ("course default, 64 wide, block 64",
            dict(n_layer=4, n_head=4, n_embd=64, d_ff=256, block_size=64, vocab_size=512))


def build(fields: dict) -> tuple[GPT, torch.Tensor]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**fields)).eval()
    prompt = torch.randint(0, model.config.vocab_size, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    return model, prompt


def ours_fn(model: GPT, prompt: torch.Tensor, new: int, use_cache: bool = True):
    def run():
        out = generate(model, prompt, new, top_k=50, use_cache=use_cache, generator=torch.Generator().manual_seed(2))
        assert out.shape == (1, PROMPT + new), out.shape
    return run


def theirs_fn(hf, prompt: torch.Tensor, new: int):
    mask = torch.ones_like(prompt)

    def run():
        out = hf.generate(prompt, attention_mask=mask, do_sample=True, top_k=50, max_new_tokens=new,
                          pad_token_id=0)
        assert out.shape == (1, PROMPT + new), f"Hugging Face stopped early: {tuple(out.shape)}"
    return run


def greedy_agreement(model: GPT, hf, prompt: torch.Tensor, new: int) -> int:
    """How many of the first `new` greedy tokens the two implementations share before they first differ."""
    ours = generate(model, prompt, new, temperature=0)[0, PROMPT:]
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=new,
                         pad_token_id=0)[0, PROMPT:]
    differ = (ours != theirs).nonzero()
    return new if len(differ) == 0 else int(differ[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds per side (median shown)")
    parser.add_argument("--new", type=int, default=256, help="new tokens per generation")
    parser.add_argument("--threads", default="default,1",
                        help="comma-separated thread counts; 'default' is torch's own choice")
    parser.add_argument("--busy", type=int, default=0, help="cores kept busy by another process meanwhile")
    args = parser.parse_args()
    transformers = optional("transformers", "the peer's generate()")
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    print(environment({"transformers": transformers.__version__}))
    default_threads = torch.get_num_threads()
    settings = [default_threads if t.strip() == "default" else int(t) for t in args.threads.split(",")]

    versus, cache_rows, notes = [], [], []
    with busy_cores(args.busy):
        for threads in settings:
            torch.set_num_threads(threads)
            label = f"{threads}" + (" (default)" if threads == default_threads else "")
            label += f", {args.busy} core busy" if args.busy else ""
            for name, fields in SIZES.items():
                model, prompt = build(fields)
                hf = hf_copy(model)
                tasks = {"ours": ours_fn(model, prompt, args.new), "theirs": theirs_fn(hf, prompt, args.new)}
                for task in tasks.values():
                    task()  # warm-up
                times = interleave(tasks, args.repeats)
                ours = [args.new / t for t in times["ours"]]
                theirs = [args.new / t for t in times["theirs"]]
                ratio = median(ours) / median(theirs)
                versus.append([name, label, f"{median(ours):,.0f}", f"{median(theirs):,.0f}", f"{ratio:.3f}",
                               ratio_range(ours, theirs), f">={TARGET}", verdict(ratio, TARGET)])
                if threads == settings[0]:
                    same = greedy_agreement(model, hf, prompt, args.new)
                    notes.append(f"{name}: greedy tokens identical for {same} of {args.new} (a later difference "
                                 f"can only come from two logits equal to float32 rounding)")
            for name, fields in [*SIZES.items(), CROPPING]:
                model, prompt = build(fields)
                tasks = {"cached": ours_fn(model, prompt, args.new),
                         "uncached": ours_fn(model, prompt, args.new, use_cache=False)}
                for task in tasks.values():
                    task()
                times = interleave(tasks, max(3, args.repeats // 2))
                cached = [args.new / t for t in times["cached"]]
                uncached = [args.new / t for t in times["uncached"]]
                block = fields["block_size"]
                cache_rows.append([name if block != 512 else f"{name}, block 512", label, f"{median(cached):,.0f}",
                                   f"{median(uncached):,.0f}", f"{median(cached) / median(uncached):.1f}"])
    torch.set_num_threads(default_threads)

    print()
    print(f"Generation, new tokens per second: {args.new} new tokens after a {PROMPT}-token prompt, batch 1, "
          f"top-k 50; median of {args.repeats} interleaved runs; 4 layers, 4 heads, vocab 512, block 512")
    print()
    print(table(["size", "threads", "ours tok/s", "HF tok/s", "ours/HF", "range", "target", ""], versus))
    print()
    print("\n".join(notes))
    print()
    print("Ours with the KV cache against ours without it (new tokens per second)")
    print()
    print(table(["size", "threads", "cached", "uncached", "speed-up"], cache_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
