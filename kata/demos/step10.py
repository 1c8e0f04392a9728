"""Step 10 demo: the same prompts continued with different temperatures, top-k and top-p, and the KV cache's
speed-up. The model is the one in checkpoint/ if there is one, else a small GPT trained here for a few seconds."""

import time

import torch

from . import load, sample_sentence, trained
from ..safetext import printable
from .step09 import small_model

WIDTH = 60  # characters of continuation shown per line


def trained_model(pkg: str):
    training = load(pkg, "step09_training")
    tokenizer, train_data, val_data, model = small_model(pkg, vocab_size=512)
    config = training.TrainConfig(epochs=25, batch_size=8, lr=6e-3, eval_batches=5)
    history = training.train(model, train_data, val_data, config)
    return model, tokenizer, history[-1]["val_loss"]


def one_line(text: str) -> str:
    text = printable(text).replace("\n", " / ")
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def run(pkg: str) -> None:
    generation = load(pkg, "step10_generation")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs faster on one thread than on several
    try:
        found = trained()
        print(found.note())
        if found.model is not None:
            model, tokenizer = found.model, found.tokenizer
            print()
        else:
            print("Training a small GPT on the bundled corpus for a few seconds...")
            model, tokenizer, val_loss = trained_model(pkg)
            print(f"done: validation loss {val_loss:.2f}.\n")
        settings = [
            ("greedy (T=0)", dict(temperature=0.0)),
            ("T=0.5", dict(temperature=0.5)),
            ("T=1.0", dict(temperature=1.0)),
            ("T=1.5", dict(temperature=1.5)),
            ("T=1, top-k 5", dict(temperature=1.0, top_k=5)),
            ("T=1, top-p 0.5", dict(temperature=1.0, top_p=0.5)),
        ]
        for index in (0, 7):
            prompt = " ".join(sample_sentence("en", index).split()[:3])
            idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
            print(f"Prompt: {prompt!r}")
            for name, options in settings:
                out = generation.generate(model, idx, 24, generator=torch.Generator().manual_seed(0), **options)
                print(f"  {name:<14} | {one_line(tokenizer.decode(out[0, idx.size(1):].tolist()))}")
            print()
        print("Low temperatures repeat the likeliest words; high ones wander. top-k and top-p")
        print("cut the unlikely tail, so the text stays sensible while still varying.\n")

        # Speed does not depend on what the weights learned: a model as wide, with a longer context.
        wide = dict(vars(model.config), block_size=256)
        torch.manual_seed(0)
        long_model = generation.GPT(generation.GPTConfig(**wide))
        idx = torch.tensor([tokenizer.encode(sample_sentence("en", 0))[:6]], dtype=torch.long)
        n = long_model.config.block_size - idx.size(1)  # stay inside block_size, where the cache helps
        timings = {}
        for use_cache in (True, False):
            start = time.perf_counter()
            out = generation.generate(long_model, idx, n, temperature=0.0, use_cache=use_cache)
            timings[use_cache] = (time.perf_counter() - start, out)
        same = torch.equal(timings[True][1], timings[False][1])
        fast, slow = timings[True][0], timings[False][0]
        print(f"{n} new tokens from a model with block_size {long_model.config.block_size}, greedy:")
        print(f"  with the KV cache {fast * 1000:.0f} ms, without it {slow * 1000:.0f} ms: "
              f"{slow / fast:.1f} times faster.")
        print(f"  The same tokens both ways: {'yes' if same else 'NO'}.")
        print("Without the cache every token runs the model on the whole context again;")
        print("with it, on the newest token alone.")
    finally:
        torch.set_num_threads(threads)
