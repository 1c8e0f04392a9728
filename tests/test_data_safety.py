"""The course deletes only folders it can prove it wrote: a user's folder that happens to be called
checkpoint.old/, checkpoint.previous/ or .checkpoint.abc.tmp/ survives every save, load, chat and train.
"""

import pytest
import torch
from course_helpers import run_course, small_text

import solutions.step11_own_model as step

pytestmark = pytest.mark.timeout(180)

TRACEBACK = "Traceback (most recent call last)"
TINY = ["--epochs", "1", "--d_model", "16", "--n_heads", "2", "--n_layers", "1", "--d_ff", "32", "--block_size", "16",
        "--bpe_vocab_size", "280", "--batch_size", "8", "--lr", "3e-3", "--threads", "1"]  # the thread probe is shown in tests/test_loop_words.py
TEXT = "The cat sleeps on the warm windowsill. The dog waits by the door. " * 6


def users_folder(path):
    path.mkdir()
    (path / "mine.txt").write_text("my own notes")
    return path / "mine.txt"


@pytest.fixture(scope="module")
def tokenizer():
    tok = step.Tokenizer()
    tok.train(TEXT, 265)
    return tok


def save(path, tokenizer, seed=0):
    torch.manual_seed(seed)
    config = step.GPTConfig(block_size=8, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, d_ff=32)
    step.save_checkpoint(path, step.GPT(config), tokenizer)


def test_a_users_checkpoint_old_survives_load_and_save(tokenizer, tmp_path):
    path = tmp_path / "checkpoint"
    save(path, tokenizer)
    mine = users_folder(tmp_path / "checkpoint.old")
    step.load_checkpoint(path)
    assert mine.read_text() == "my own notes", "loading deleted a user's checkpoint.old/"
    with pytest.raises(ValueError, match="checkpoint.old was left as it is"):
        save(path, tokenizer, seed=1)
    assert mine.read_text() == "my own notes", "saving deleted a user's checkpoint.old/"
    step.load_checkpoint(path)
    (path.parent / "checkpoint.old" / "mine.txt").unlink()
    path.rename(tmp_path / "elsewhere")  # checkpoint.old/ now empty, checkpoint/ gone: nothing of the user's is lost
    save(path, tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "elsewhere"]


def test_only_the_courses_own_stale_temporary_folder_is_deleted(tokenizer, tmp_path):
    path = tmp_path / "checkpoint"
    save(path, tokenizer)
    mine = users_folder(tmp_path / ".checkpoint.abc.tmp")
    stale = tmp_path / ".checkpoint.0123abcd.tmp"  # as a save killed while writing leaves it
    stale.mkdir()
    (stale / step.MARKER_FILE).write_text(step.MARKER_TEXT)
    (stale / "model.pt").write_bytes(b"half")
    save(path, tokenizer, seed=1)
    assert mine.read_text() == "my own notes", "a user's .checkpoint.abc.tmp/ was deleted"
    assert not stale.exists(), "the course's own stale temporary folder was left behind"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.pt", "tokenizer.json"]


def test_is_checkpoint_folder_accepts_only_provably_ours(tokenizer, tmp_path):
    path = tmp_path / "checkpoint"
    save(path, tokenizer)
    assert step.is_checkpoint_folder(path), "a checkpoint (without the marker, as older ones are) is ours"
    (path / ".notes").write_text("mine")
    assert not step.is_checkpoint_folder(path), "a hidden file of the user's makes it not ours"
    (path / ".notes").unlink()
    (path / "config.json").write_text('{"format": "someone-else"}')
    assert not step.is_checkpoint_folder(path), "a config.json the course did not write makes it not ours"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.pt").write_bytes(b"someone's weights")
    assert not step.is_checkpoint_folder(tmp_path / "weights"), "weights alone, without our config, are not ours"


def test_a_users_checkpoint_old_survives_chat_and_train(repo):
    text = small_text(repo)
    assert run_course(repo, "train", text, *TINY).returncode == 0
    mine = users_folder(repo / "checkpoint.old")
    chat = run_course(repo, "chat", input_text="The cat\n")
    assert chat.returncode == 0 and TRACEBACK not in chat.stderr, chat.stdout + chat.stderr
    assert mine.read_text() == "my own notes", "chat deleted a user's checkpoint.old/"
    out = run_course(repo, "train", text, *TINY)
    assert out.returncode == 2 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "checkpoint.old/" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert mine.read_text() == "my own notes", "train deleted a user's checkpoint.old/"
    step.load_checkpoint(repo / "checkpoint")


def test_a_users_checkpoint_previous_survives_a_new_run(repo):
    text = small_text(repo)
    assert run_course(repo, "train", text, *TINY).returncode == 0
    first = (repo / "checkpoint/model.pt").read_bytes()
    mine = users_folder(repo / "checkpoint.previous")
    out = run_course(repo, "train", text, *TINY)
    assert out.returncode == 2 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "checkpoint.previous/" in out.stderr and "move it away" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, "one sentence"
    assert mine.read_text() == "my own notes", "a new run deleted a user's checkpoint.previous/"
    assert (repo / "checkpoint/model.pt").read_bytes() == first, "the refused run changed the checkpoint"

    mine.unlink()
    (repo / "checkpoint.previous").rmdir()
    assert run_course(repo, "train", text, *TINY).returncode == 0
    assert (repo / "checkpoint.previous/model.pt").read_bytes() == first
    second = (repo / "checkpoint/model.pt").read_bytes()
    out = run_course(repo, "train", text, *TINY, "--seed", "7")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (repo / "checkpoint.previous/model.pt").read_bytes() == second, "a previous/ of the course's is replaced"


def test_stopping_between_the_renames_keeps_checkpoint_in_place(tokenizer, tmp_path, monkeypatch, capsys):
    """Ctrl+C right after checkpoint/ moved to checkpoint.previous/: the earlier model goes back."""
    path = tmp_path / "checkpoint"
    save(path, tokenizer)
    first = (path / "model.pt").read_bytes()
    (tmp_path / "small.txt").write_text(TEXT * 20)
    real = type(path).rename

    def rename(self, target):
        real(self, target)
        if str(target).endswith("checkpoint.previous"):
            raise KeyboardInterrupt

    monkeypatch.setattr(type(path), "rename", rename)
    from kata.cli import main

    code = main(["train", str(tmp_path / "small.txt"), "--checkpoint", str(path), "--reference", *TINY])
    monkeypatch.undo()
    assert code == 130
    assert (path / "model.pt").read_bytes() == first, "checkpoint/ must hold the last good model"
    assert "still holds the checkpoint it had" in capsys.readouterr().out
