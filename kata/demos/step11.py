"""Step 11 demo: train a small model on the bundled corpus, save a checkpoint, load it back, compare, write."""

import tempfile
from pathlib import Path

import torch

from . import corpus, load


def run(pkg: str) -> None:
    own = load(pkg, "step11_own_model")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread than on several
    try:
        print("1. Prepare the data: train a tokenizer on the bundled corpus, encode, split.")
        tokenizer, train_data, val_data = own.prepare_data(corpus(), 512)
        print(f"   {tokenizer.vocab_size} tokens; {len(train_data):,} for training, {len(val_data):,} for "
              f"validation ({train_data.dtype}).\n")
        torch.manual_seed(1337)
        config = own.GPTConfig(block_size=32, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=4, n_embd=64,
                               d_ff=256, dropout=0.0)
        model = own.GPT(config)
        settings = own.TrainConfig(epochs=25, batch_size=8, lr=6e-3, eval_batches=5)
        print(f"2. Train a GPT of {model.num_params():,} parameters for {settings.epochs} epochs...")
        history = own.train(model, train_data, val_data, settings)
        print(f"   validation loss {history[0]['val_loss']:.2f} -> {history[-1]['val_loss']:.2f} in "
              f"{history[-1]['elapsed']:.1f}s.\n")

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "checkpoint"
            own.save_checkpoint(folder, model, tokenizer, extra={"epoch": settings.epochs})
            print("3. Save a checkpoint (written into a temporary folder, then renamed into place):")
            for path in sorted(folder.iterdir()):
                print(f"   checkpoint/{path.name:<16} {path.stat().st_size:>9,} bytes")
            print()
            loaded, loaded_tokenizer, extra = own.load_checkpoint(folder)
        idx = torch.tensor([tokenizer.encode("The cat sleeps on the warm windowsill")], dtype=torch.long)
        with torch.no_grad():
            before, _ = model.eval()(idx)
            after, _ = loaded(idx)
        difference = (before - after).abs().max().item()
        print("4. Load it back: a new GPT built from config.json, filled with model.pt.")
        print(f"   largest difference between the logits of the two models: {difference}")
        print(f"   same tokenizer: {loaded_tokenizer.encode('The dog waits') == tokenizer.encode('The dog waits')}"
              f"; training state: {extra}.\n")

        print("5. Write with the loaded model (temperature 0.8, top-k 20):")
        prompt = "The morning"
        idx = torch.tensor([loaded_tokenizer.encode(prompt)], dtype=torch.long)
        out = own.generate(loaded, idx, 40, temperature=0.8, top_k=20, generator=torch.Generator().manual_seed(1))
        text = loaded_tokenizer.decode(out[0].tolist())
        for line in text.splitlines()[:3]:
            print(f"   {line[:76]}")
    finally:
        torch.set_num_threads(threads)
