"""Checks for step 11: your own model (data preparation, checkpoints, training on the bundled corpus).

Checkpoints are written only under pytest's tmp_path. The model is a tiny GPT whose sizes all differ from
GPTConfig's defaults (block_size=12, n_embd=16, n_head=2, n_layer=2, d_ff=40), so a checkpoint that forgets
its config cannot load by luck.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus_en.txt"
TEXT = ("The cat sleeps on the warm windowsill. The kettle starts to whistle in the kitchen. "
        "My mother pours hot tea into two white cups. The dog waits by the door. ") * 3
FILES = {"model.pt", "config.json", "tokenizer.json"}


@pytest.fixture(scope="module")
def tokenizer(step):
    tok = step.Tokenizer()
    tok.train(TEXT, 270)
    return tok


def tiny_gpt(step, vocab_size, seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(block_size=12, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16, d_ff=40, dropout=0.0)
    settings.update(overrides)
    model = step.GPT(step.GPTConfig(**settings))
    with torch.no_grad():  # make biases and LayerNorm weights differ from their start, so they must be saved too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def some_tokens(vocab_size, T=12, seed=1):
    return torch.randint(0, vocab_size, (2, T), generator=torch.Generator().manual_seed(seed))


def logits_of(model, idx):
    model.eval()
    with torch.no_grad():
        return model(idx)[0]


def saved(step, tokenizer, path, seed=0, extra=None):
    model = tiny_gpt(step, tokenizer.vocab_size, seed=seed)
    step.save_checkpoint(path, model, tokenizer, extra)
    return model


def refusal(step, path, why=""):
    """The message of the ValueError that load_checkpoint(path) raises; fails the check if it raises none."""
    try:
        step.load_checkpoint(path)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"load_checkpoint accepted a broken checkpoint in {path.name}/: it should raise ValueError"
                         + (f"; {why}" if why else ""))


# prepare_data

def test_prepare_data_returns_a_consistent_split(step):
    tokenizer, train_data, val_data = step.prepare_data(TEXT, 270, val_fraction=0.25)
    assert tokenizer.vocab_size == 270, f"the tokenizer should be trained to vocab_size=270, it has {tokenizer.vocab_size}"
    for name, part in [("train", train_data), ("val", val_data)]:
        assert isinstance(part, np.ndarray) and part.dtype == np.uint16, (
            f"the {name} tokens should be a numpy array of uint16 (step 2's as_token_array), got "
            f"{type(part).__name__} {getattr(part, 'dtype', '')}"
        )
    ids = tokenizer.encode(TEXT)
    both = np.concatenate([train_data, val_data]).tolist()
    assert both == ids, (
        "train followed by val should be exactly the encoded text: encode the whole text once, then split it"
    )
    assert abs(len(val_data) - 0.25 * len(ids)) <= 1, (
        f"with val_fraction=0.25, val should hold about a quarter of the {len(ids)} tokens, it holds {len(val_data)}: "
        f"pass val_fraction on to train_val_split"
    )
    assert tokenizer.decode(both) == TEXT, "decoding train + val should give back the text"


# saving

def test_the_checkpoint_folder_holds_exactly_the_three_files(step, tokenizer, tmp_path):
    saved(step, tokenizer, tmp_path / "checkpoint")
    found = {p.name for p in (tmp_path / "checkpoint").iterdir()}
    missing, more = sorted(FILES - found), sorted(found - FILES)
    assert not missing, f"the checkpoint folder lacks {', '.join(missing)}: save_checkpoint writes all three files"
    assert not more, f"without extra the checkpoint folder should hold only the three files, it also holds {more}"
    saved(step, tokenizer, tmp_path / "resumable", extra={"epoch": 3})
    found = {p.name for p in (tmp_path / "resumable").iterdir()}
    assert "train_state.pt" in found, (
        "with extra given, train_state.pt was not written: torch.save(extra, folder / STATE_FILE)"
    )


def test_model_pt_is_a_plain_state_dict(step, tokenizer, tmp_path):
    model = saved(step, tokenizer, tmp_path / "checkpoint")
    try:
        state = torch.load(tmp_path / "checkpoint" / "model.pt", weights_only=True)
    except Exception as error:
        raise AssertionError(
            f"model.pt cannot be read with torch.load(..., weights_only=True) ({type(error).__name__}): save "
            f"model.state_dict(), not the model object"
        ) from error
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()), (
        "model.pt should hold the state dict: a dict of names -> tensors"
    )
    own = model.state_dict()
    assert set(state) == set(own), (
        f"model.pt should hold exactly the model's state dict names; missing {sorted(set(own) - set(state))[:3]}, "
        f"extra {sorted(set(state) - set(own))[:3]}")
    changed = [name for name in own if state[name].dtype != own[name].dtype]
    assert not changed, (
        f"model.pt holds {changed[0]} as {state[changed[0]].dtype} where the model has {own[changed[0]].dtype}: "
        f"save model.state_dict() as it is, without converting it")
    fresh = step.GPT(model.config)
    fresh.load_state_dict(state)
    idx = some_tokens(tokenizer.vocab_size)
    assert torch.equal(logits_of(fresh, idx), logits_of(model, idx)), (
        "a fresh GPT loaded with model.pt's state dict gives other logits than the saved model"
    )


def test_config_json_records_the_architecture(step, tokenizer, tmp_path):
    model = saved(step, tokenizer, tmp_path / "checkpoint")
    data = json.loads((tmp_path / "checkpoint" / "config.json").read_text(encoding="utf-8"))
    assert data.get("format") == step.CHECKPOINT_FORMAT and data.get("version") == step.CHECKPOINT_VERSION, (
        f"config.json should have \"format\": {step.CHECKPOINT_FORMAT!r} and \"version\": {step.CHECKPOINT_VERSION}; "
        f"got {data.get('format')!r}, {data.get('version')!r}"
    )
    for key, value in asdict(model.config).items():
        assert data.get(key) == value, (
            f"config.json should record the model's own {key}={value!r}, it has {data.get(key)!r}: write "
            f"asdict(model.config)"
        )


def test_tokenizer_json_is_the_tokenizer(step, tokenizer, tmp_path):
    saved(step, tokenizer, tmp_path / "checkpoint")
    loaded = step.Tokenizer.load(tmp_path / "checkpoint" / "tokenizer.json")
    text = "The cat waits by the warm kettle."
    assert loaded.encode(text) == tokenizer.encode(text), (
        "the tokenizer read back from tokenizer.json encodes differently: save the tokenizer the model was trained with"
    )


# loading

def test_save_then_load_gives_identical_logits(step, tokenizer, tmp_path):
    model = saved(step, tokenizer, tmp_path / "checkpoint")
    loaded, loaded_tokenizer, extra = step.load_checkpoint(tmp_path / "checkpoint")
    assert loaded.config == model.config, f"the loaded model's config {loaded.config} differs from {model.config}"
    for T in (1, 12):
        idx = some_tokens(tokenizer.vocab_size, T=T)
        got, want = logits_of(loaded, idx), logits_of(model, idx)
        if not torch.equal(got, want):
            raise AssertionError(f"the loaded model's logits (T={T}) differ from the saved model's by up to "
                                 f"{(got - want).abs().max().item():.3g}{why_other_logits(loaded, model, tmp_path)}")
    assert loaded_tokenizer.vocab_size == tokenizer.vocab_size, "the loaded tokenizer has another vocabulary"
    assert extra == {}, f"without extra, load_checkpoint should return {{}} as its third value, got {extra!r}"
    prompt = torch.tensor([tokenizer.encode("The cat")])
    a = step.generate(model, prompt, 6, temperature=0.0)
    b = step.generate(loaded, prompt, 6, temperature=0.0)
    assert torch.equal(a, b), "the loaded model writes other text than the saved one"


def test_the_loaded_model_is_in_eval_mode(step, tokenizer, tmp_path):
    model = tiny_gpt(step, tokenizer.vocab_size, dropout=0.3)
    step.save_checkpoint(tmp_path / "checkpoint", model, tokenizer)
    loaded, _, _ = step.load_checkpoint(tmp_path / "checkpoint")
    assert not loaded.training, (
        "load_checkpoint returned a model in training mode (dropout on): restore_model should return model.eval()"
    )


def test_the_training_state_round_trips(step, tokenizer, tmp_path):
    model = tiny_gpt(step, tokenizer.vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(some_tokens(tokenizer.vocab_size), some_tokens(tokenizer.vocab_size, seed=2))[1].backward()
    optimizer.step()
    extra = {"optimizer": optimizer.state_dict(), "epoch": 3, "best_val_loss": 2.5}
    step.save_checkpoint(tmp_path / "checkpoint", model, tokenizer, extra)
    _, _, got = step.load_checkpoint(tmp_path / "checkpoint")
    assert got.get("epoch") == 3 and got.get("best_val_loss") == 2.5, (
        f"extra should come back as it was saved, got the keys {sorted(got)}: torch.save(extra, folder / STATE_FILE)"
    )
    again = torch.optim.AdamW(model.parameters(), lr=1e-3)
    again.load_state_dict(got["optimizer"])
    first = next(iter(optimizer.state.values()))["exp_avg"]
    assert torch.equal(next(iter(again.state.values()))["exp_avg"], first), "the optimizer's state changed on the way"


def test_saving_again_replaces_the_checkpoint_and_leaves_nothing_behind(step, tokenizer, tmp_path):
    saved(step, tokenizer, tmp_path / "checkpoint", seed=0)
    second = saved(step, tokenizer, tmp_path / "checkpoint", seed=1)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["checkpoint"], f"after two saves only checkpoint/ should be left, found {left}"
    loaded, _, _ = step.load_checkpoint(tmp_path / "checkpoint")
    idx = some_tokens(tokenizer.vocab_size)
    assert torch.equal(logits_of(loaded, idx), logits_of(second, idx)), "the second save did not replace the first"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "diary.txt").write_text("mine")
    with pytest.raises(ValueError):
        step.save_checkpoint(notes, second, tokenizer)
    assert (notes / "diary.txt").read_text() == "mine", "saving over a folder that is not a checkpoint lost a file"


def test_an_interrupted_save_loses_nothing(step, tokenizer, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint"
    first = saved(step, tokenizer, path)
    idx = some_tokens(tokenizer.vocab_size)

    def interrupted(folder, model, tokenizer, extra=None):
        (folder / "model.pt").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(step, "write_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        step.save_checkpoint(path, tiny_gpt(step, tokenizer.vocab_size, seed=1), tokenizer)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"], "an interrupted save left files behind"
    loaded, _, _ = step.load_checkpoint(path)
    assert torch.equal(logits_of(loaded, idx), logits_of(first, idx)), "an interrupted save damaged the checkpoint"
    path.rename(tmp_path / "checkpoint.old")  # as if a save had stopped between its two renames
    loaded, _, _ = step.load_checkpoint(path)
    assert torch.equal(logits_of(loaded, idx), logits_of(first, idx)), "the previous checkpoint was not recovered"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"], "checkpoint.old should be renamed back"


def test_load_refuses_a_missing_or_incomplete_checkpoint(step, tokenizer, tmp_path):
    saved(step, tokenizer, tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / "tokenizer.json").unlink()
    message = refusal(step, tmp_path / "checkpoint")
    assert "tokenizer.json" in message, f"the refusal should name the missing file, tokenizer.json: {message!r}"
    for name in ("nowhere", "empty"):
        if name == "empty":
            (tmp_path / name).mkdir()
        message = refusal(step, tmp_path / name)
        assert "no checkpoint" in message and "python course.py train" in message, (
            f"for a folder without a checkpoint the message should say so and how to make one, got {message!r}"
        )


@pytest.mark.parametrize("change", [{"n_embd": 32}, {"n_layer": 1}, {"n_layer": 3}, {"block_size": 64}],
                         ids=["wider", "fewer layers", "more layers", "longer context"])
def test_load_refuses_a_config_that_does_not_match_the_weights(step, tokenizer, tmp_path, change):
    saved(step, tokenizer, tmp_path / "checkpoint")
    config_file = tmp_path / "checkpoint" / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.update(change)
    config_file.write_text(json.dumps(config), encoding="utf-8")
    try:
        loaded, _, _ = step.load_checkpoint(tmp_path / "checkpoint")
    except ValueError as error:
        message = str(error)
    else:
        raise AssertionError(f"load_checkpoint accepted a broken checkpoint in checkpoint/: it should raise "
                             f"ValueError; config.json says {change}, unlike the weights{accepted_how(loaded, tmp_path)}")
    assert "config.json" in message and "model.pt" in message, (
        f"the refusal should say that config.json does not match model.pt, got {message!r}"
    )


def why_other_logits(loaded, model, tmp_path) -> str:
    """Where the weights went wrong on the way: into model.pt, or out of it."""
    weights = torch.load(tmp_path / "checkpoint" / "model.pt", weights_only=True)
    state, own = loaded.state_dict(), model.state_dict()
    if not all(name in state and torch.equal(state[name], w) for name, w in weights.items()):
        return ": the loaded model does not hold model.pt's weights: load them with model.load_state_dict(state_dict)"
    if not all(name in weights and torch.equal(weights[name], w) for name, w in own.items()):
        return ": model.pt does not hold the saved model's weights exactly as they were"
    return ""


def accepted_how(loaded, tmp_path) -> str:
    """Why a mismatched checkpoint loaded, as far as the loaded model shows it: its weights that model.pt also
    holds, with the same shape, are model.pt's (loaded with strict=False), or they are not (never loaded)."""
    weights = torch.load(tmp_path / "checkpoint" / "model.pt", weights_only=True)
    state = loaded.state_dict()
    shared = [name for name, w in weights.items() if name in state and state[name].shape == w.shape]
    if not shared:
        return ""
    if all(torch.equal(state[name], weights[name]) for name in shared):
        return (": the weights that match were loaded and the rest ignored: load_state_dict(state_dict) is strict "
                "by default, so that a missing or extra name is an error; do not pass strict=False")
    return (": the loaded model does not hold model.pt's weights: load them with model.load_state_dict(state_dict)")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_load_refuses_a_corrupt_model_file(step, tokenizer, tmp_path, damage):
    saved(step, tokenizer, tmp_path / "checkpoint")
    weights = tmp_path / "checkpoint" / "model.pt"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a model" * 50, "empty": b""}[damage])
    message = refusal(step, tmp_path / "checkpoint")
    assert "model.pt" in message, f"the refusal should name model.pt, got {message!r}"


def test_load_refuses_a_tokenizer_of_another_vocabulary(step, tokenizer, tmp_path):
    saved(step, tokenizer, tmp_path / "checkpoint")
    other = step.Tokenizer()
    other.train(TEXT, 265)
    other.save(tmp_path / "checkpoint" / "tokenizer.json")
    message = refusal(step, tmp_path / "checkpoint")
    assert "vocab_size" in message and "265" in message, (
        f"the refusal should say that the tokenizer's 265 tokens do not match vocab_size, got {message!r}"
    )


# training on the bundled corpus

def test_a_small_model_learns_the_bundled_corpus(step):
    """Vocabulary 300, one layer, 3 epochs (about 0.3 s). A model that only knew how often each token occurs
    would score the unigram cross-entropy (about 4.1 here); a model that reads the context must do better.
    Measured: 3.3 to 3.6 for seeds 0, 1, 2."""
    if not CORPUS.is_file():
        pytest.fail(f"the bundled corpus {CORPUS} is missing")
    text = CORPUS.read_text(encoding="utf-8")
    tokenizer, train_data, val_data = step.prepare_data(text, 300)
    torch.manual_seed(0)
    config = step.GPTConfig(block_size=16, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, d_ff=64,
                            dropout=0.0)
    model = step.GPT(config)
    history = step.train(model, train_data, val_data,
                         step.TrainConfig(epochs=3, batch_size=16, lr=1e-2, eval_batches=4, seed=0))
    counts = np.bincount(train_data, minlength=tokenizer.vocab_size) + 1.0
    unigram = float(-np.log(counts[val_data] / counts.sum()).mean())
    bar = min(0.8 * math.log(tokenizer.vocab_size), unigram)
    val_loss = history[-1]["val_loss"]
    assert val_loss < bar, (
        f"the model did not learn the bundled corpus: validation loss {val_loss:.3f} after 3 epochs, expected "
        f"below {bar:.3f}\n(counting token frequencies alone gives {unigram:.3f}, a uniform guess "
        f"{math.log(tokenizer.vocab_size):.3f})"
    )
