"""Step 9 demo: train a small GPT on the bundled corpus, with a line per epoch and a summary."""

import math
import time

import torch

from ..trainview import TrainingView
from ..ui import count
from . import corpus, load


def small_model(pkg: str, vocab_size: int = 384, block_size: int = 32):
    """A tokenizer trained on the bundled corpus, its tokens split for training, and a small GPT for them."""
    Tokenizer = load(pkg, "step01_tokenizer").Tokenizer
    data = load(pkg, "step02_data")
    training = load(pkg, "step09_training")
    text = corpus()
    tokenizer = Tokenizer()
    tokenizer.train(text, vocab_size)
    tokens = data.as_token_array(tokenizer.encode(text), tokenizer.vocab_size)
    train_data, val_data = data.train_val_split(tokens, 0.1)
    torch.manual_seed(1337)
    config = training.GPTConfig(block_size=block_size, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=4,
                                n_embd=64, d_ff=256, dropout=0.0)
    return tokenizer, train_data, val_data, training.GPT(config)


def run(pkg: str) -> None:
    training = load(pkg, "step09_training")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread than on several
    try:
        tokenizer, train_data, val_data, model = small_model(pkg)
        config = training.TrainConfig(epochs=25, batch_size=16, lr=3e-3, eval_batches=10)
        steps = training.steps_per_epoch(len(train_data), config.batch_size, model.config.block_size)
        uniform = math.log(tokenizer.vocab_size)
        print(f"Training a GPT of {model.num_params():,} parameters on the bundled corpus:")
        print(f"{len(train_data):,} training tokens, {len(val_data):,} for validation, a vocabulary of "
              f"{tokenizer.vocab_size};\n{count(config.epochs, 'epoch')} of {count(steps, 'step')}, each a batch of "
              f"{config.batch_size} x {model.config.block_size} tokens.")
        print(f"A uniform guess would score loss ln({tokenizer.vocab_size}) = {uniform:.2f}, "
              f"perplexity {tokenizer.vocab_size}.\n")
        view = TrainingView(config.epochs, steps)  # the same display as `course.py train`
        view.header()
        start = time.perf_counter()
        history = training.train(model, train_data, val_data, config, callback=view.update)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    first, last = history[0], history[-1]
    best = min(history, key=lambda e: e["val_loss"])
    print(f"\nDone in {seconds:.1f}s. Validation loss {first['val_loss']:.3f} -> {last['val_loss']:.3f} "
          f"(best {best['val_loss']:.3f}, epoch {best['epoch'] + 1}).")
    print(f"Perplexity {first['val_ppl']:.1f} -> {last['val_ppl']:.1f}: the model now hesitates between about "
          f"{last['val_ppl']:.0f}\ntokens where a uniform guess hesitates between {tokenizer.vocab_size}.")
    gap = last["val_loss"] - last["train_loss"]
    verdict = "it still generalises" if gap < 0.3 else "it starts to memorise its text"
    print(f"Validation loss minus training loss: {gap:+.3f} ({verdict}).")
