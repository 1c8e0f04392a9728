"""Every step's live demo (kata/demos/stepNN.py) runs on the reference and prints what it promises.

Each demo runs in this process with its output captured. Demos 9 to 11 train a small GPT for 25 epochs
(about ten seconds each); here that training is cut to two epochs and the tokenizer is trained with the
fast trainer, which learns the same merges (tests/test_fast_bpe.py), so the whole file takes seconds.
"""

import dataclasses
import importlib

import pytest

import solutions.step01_tokenizer as step01
import solutions.step09_training as step09
import solutions.step11_own_model as step11
from solutions._fast_bpe import train_fast

# A phrase each demo prints when it works: a heading, or a result it computed.
PHRASES = {
    1: "First merges learned",
    2: "num_windows(",
    3: "wte (512, 64)",
    4: "One untrained head",
    5: "heads of hs=16",
    6: "An MLP with n_embd=64",
    7: "the shape is kept, so blocks stack",
    8: "An untrained GPT",
    9: "Validation loss minus training loss",
    10: "top-k 5",
    11: "largest difference between the logits",
}


@pytest.fixture
def quick(monkeypatch):
    """The reference, sped up where a demo only waits: two epochs of training, the fast tokenizer trainer."""
    real_train = step09.train

    def two_epochs(model, train_data, val_data, config, *args, **kwargs):
        return real_train(model, train_data, val_data, dataclasses.replace(config, epochs=2), *args, **kwargs)

    monkeypatch.setattr(step09, "train", two_epochs)
    monkeypatch.setattr(step11, "train", two_epochs)  # step 11 holds its own name for step 9's train
    monkeypatch.setattr(step01.Tokenizer, "train", lambda self, text, vocab_size: train_fast(self, text, vocab_size))


@pytest.mark.parametrize("number", sorted(PHRASES), ids=lambda n: f"step{n:02d}")
def test_the_demo_runs_on_the_reference(number, quick, capsys):
    demo = importlib.import_module(f"kata.demos.step{number:02d}")
    demo.run("solutions")
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) >= 3, f"demo {number} printed {len(lines)} non-blank lines:\n{out}"
    assert PHRASES[number] in out, f"demo {number} did not print {PHRASES[number]!r}:\n{out[:2000]}"
    wide = [line for line in out.splitlines() if len(line) > 80]
    assert not wide, f"demo {number} printed lines wider than 80 columns: {wide[:2]}"
    assert "\x1b[" not in out, f"demo {number} printed colour codes; demos print plain text"


TRAINED_PHRASES = {
    3: "Nearest neighbours of",
    4: "The head that most looks one token back",
    5: "of the trained model, each head's weights from your code",
    7: "the first block of the trained model",
    10: "Prompt:",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small model trained for a few epochs on the bundled corpus and saved as `course.py train` saves it."""
    import torch

    import solutions.step02_data as step02
    from kata.demos import corpus

    folder = tmp_path_factory.mktemp("trained") / "checkpoint"
    text = corpus()
    tokenizer = step01.Tokenizer()
    train_fast(tokenizer, text, 512)
    tokens = step02.as_token_array(tokenizer.encode(text), tokenizer.vocab_size)
    train_data, val_data = step02.train_val_split(tokens, 0.1)
    torch.manual_seed(0)
    config = step09.GPTConfig(block_size=32, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=4, n_embd=32,
                              d_ff=64, dropout=0.0)
    model = step09.GPT(config)
    step09.train(model, train_data, val_data, step09.TrainConfig(epochs=2, batch_size=16, lr=3e-3, eval_batches=2))
    step11.save_checkpoint(folder, model, tokenizer)
    return folder


@pytest.mark.parametrize("number", sorted(TRAINED_PHRASES), ids=lambda n: f"step{n:02d}")
def test_the_demo_shows_the_trained_model_when_there_is_one(number, checkpoint, monkeypatch, capsys):
    import kata.demos

    monkeypatch.setattr(kata.demos, "CHECKPOINT", checkpoint)
    importlib.import_module(f"kata.demos.step{number:02d}").run("solutions")
    out = capsys.readouterr().out
    assert out.startswith("The trained model in checkpoint/ (2 layers, 4 heads, n_embd 32, 512 tokens)."), out[:300]
    assert TRAINED_PHRASES[number] in out, f"demo {number} did not print {TRAINED_PHRASES[number]!r}:\n{out[:2000]}"
    assert "untrained" not in out, f"demo {number} says untrained while showing the trained model:\n{out[:2000]}"
    wide = [line for line in out.splitlines() if len(line) > 80]
    assert not wide, f"demo {number} printed lines wider than 80 columns: {wide[:2]}"


@pytest.mark.parametrize("number", sorted(TRAINED_PHRASES), ids=lambda n: f"step{n:02d}")
def test_a_damaged_checkpoint_is_named_and_the_demo_goes_on_untrained(number, quick, tmp_path, monkeypatch, capsys):
    import kata.demos

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"not a model")
    monkeypatch.setattr(kata.demos, "CHECKPOINT", folder)
    importlib.import_module(f"kata.demos.step{number:02d}").run("solutions")
    out = capsys.readouterr().out
    assert out.startswith("checkpoint/ did not load ("), out[:300]
    assert "this demo uses an untrained model" in out.splitlines()[0]
    assert PHRASES[number] in out, f"demo {number} did not go on untrained:\n{out[:2000]}"
