"""The direct modes (train, chat) as a person uses them: good runs, bad input, Ctrl+C and Ctrl+D.

Every bad input must give one sentence and a non-zero exit, never a traceback, and never a half-written
checkpoint. Training here uses a tiny model so that each run takes a few seconds.
"""

import json
import re

import pytest
from course_helpers import TINY, run_course, small_text, spawn_course

pytestmark = pytest.mark.timeout(180)

TRACEBACK = "Traceback (most recent call last)"


def no_traceback(out) -> None:
    text = out.stdout + out.stderr if hasattr(out, "stdout") else out
    assert TRACEBACK not in text, text[-2000:]


def leftovers(repo) -> list[str]:
    """Anything a save could leave half-done beside the checkpoint."""
    kept = ("checkpoint", "checkpoint.previous", "checkpoint.loss_curve.png")  # the curve is drawn beside it
    return [p.name for p in repo.iterdir() if p.name.startswith("checkpoint") and p.name not in kept]


def test_train_on_the_bundled_corpus_then_chat(repo):
    out = run_course(repo, "train", "--epochs", "2", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    no_traceback(out)
    assert "the bundled corpus" in out.stdout and "Summary" in out.stdout and "A sample" in out.stdout
    row = r"(?m)^1 / 2  \[#+\.*\]\s+\d+\.\d{3}\s+\d+\.\d{3}\s+\d+\.\d\s+\d+\.\ds  saved$"
    assert re.search(row, out.stdout), "one row per epoch: train loss, val loss, perplexity, time\n" + out.stdout
    files = sorted(p.name for p in (repo / "checkpoint").iterdir())
    assert files == ["config.json", "model.pt", "tokenizer.json", "train_state.pt"]
    assert json.loads((repo / "checkpoint/config.json").read_text())["n_embd"] == 16
    assert leftovers(repo) == []

    chat = run_course(repo, "chat", input_text="/temp 0\nThe cat\nThe cat\n/len 5\n/topk x\nThe dog\n")
    assert chat.returncode == 0, chat.stderr
    no_traceback(chat)
    lines = [line for line in chat.stdout.splitlines() if line.startswith("The cat")]
    assert len(lines) == 2 and lines[0] == lines[1] and len(lines[0]) > len("The cat"), \
        "at temperature 0 the same prompt gives the same continuation"
    assert "is not a whole number" in chat.stdout

    first = (repo / "checkpoint/model.pt").read_bytes()
    out = run_course(repo, "train", small_text(repo), "--epochs", "1", *TINY)
    assert out.returncode == 0 and "it will be kept as checkpoint.previous/" in out.stdout, out.stdout + out.stderr
    assert (repo / "checkpoint.previous/model.pt").read_bytes() == first, "a new run keeps the earlier model"
    assert leftovers(repo) == []


def test_resume_continues_from_the_checkpoint(repo):
    text = small_text(repo)
    assert run_course(repo, "train", text, "--epochs", "1", *TINY).returncode == 0
    out = run_course(repo, "train", text, "--resume", "--epochs", "2", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Resuming checkpoint/ after epoch 1" in out.stdout and "\n2 / 2  [" in out.stdout
    assert "\n1 / 2  [" not in out.stdout, "the epoch already trained is not trained again"
    out = run_course(repo, "train", text, "--resume", "--epochs", "2", *TINY)
    assert out.returncode == 2 and "already trained 2 epochs" in out.stderr


def test_paste_and_the_long_forms(repo):
    text = small_text(repo)
    out = run_course(repo, "--paste", "--epochs", "1", *TINY, input_text=(repo / text).read_text())
    assert out.returncode == 0 and "the pasted text" in out.stdout, out.stderr
    out = run_course(repo, "--train", "missing.txt", "--epochs", "1", *TINY)
    assert out.returncode == 2 and "missing.txt: no such file" in out.stderr, "--train FILE is train FILE"
    out = run_course(repo, "--interactive", input_text="/temp 0\nA bus\n")
    assert out.returncode == 0 and "A bus" in out.stdout, out.stderr


@pytest.mark.parametrize("make,args,message", [
    (None, ["missing.txt"], "missing.txt: no such file"),
    ("dir", ["folder"], "folder is a directory"),
    ("empty", ["empty.txt"], "empty.txt is empty"),
    ("binary", ["binary.bin"], "looks like a binary file"),
    ("latin1", ["latin1.txt"], "is not UTF-8 text"),
    ("short", ["short.txt"], "the text is too short"),
    (None, ["--d_model", "30", "--n_heads", "4"], "--d_model 30 is not divisible by --n_heads 4"),
    (None, ["--bpe_vocab_size", "100"], "--bpe_vocab_size must be at least 256"),
    (None, ["--epochs", "0"], "--epochs must be at least 1"),
    (None, ["--epochs", "-3"], "--epochs must be at least 1"),
    (None, ["--lr", "-1"], "--lr must be a positive number"),
    (None, ["--device", "tpu"], "--device must be auto, cuda, mps or cpu"),
    (None, ["--threads", "-2"], "--threads must be 0 (all cores) or more"),
])
def test_bad_training_input_gets_one_sentence(repo, make, args, message):
    files = {"empty": ("empty.txt", b""), "binary": ("binary.bin", bytes(range(256)) * 4),
             "latin1": ("latin1.txt", "Zażółć gęślą jaźń".encode("iso-8859-2")),
             "short": ("short.txt", b"Too short for one window.")}
    if make == "dir":
        (repo / "folder").mkdir()
    elif make is not None:
        name, data = files[make]
        (repo / name).write_bytes(data)
    out = run_course(repo, "train", *args, *([] if make == "short" else []))
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, "one sentence"
    no_traceback(out)
    assert not (repo / "checkpoint").exists()


def test_chat_without_a_checkpoint(repo):
    out = run_course(repo, "chat")
    assert out.returncode == 2 and "no checkpoint in checkpoint/" in out.stderr and "course.py train" in out.stderr
    no_traceback(out)


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "model.pt").write_bytes(b"not a torch file"), "model.pt cannot be read"),
    (lambda d: (d / "config.json").write_text("{ broken"), "config.json is not valid JSON"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"n_embd": 16', '"n_embd": 32')), "does not match the weights"),
])
def test_a_damaged_checkpoint_is_refused(trained_repo, damage, message):
    damage(trained_repo / "checkpoint")
    out = run_course(trained_repo, "chat")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    no_traceback(out)


def test_train_with_your_own_unwritten_code(repo):
    out = run_course(repo, "train", "--mine", "--epochs", "1", *TINY)
    assert out.returncode == 2 and "is not written yet" in out.stderr and TRACEBACK not in out.stderr, out.stderr
    assert "`prepare_data()` in exercises/step11_own_model.py" in out.stderr, "--mine runs your own code"
    no_traceback(out)


def test_ctrl_c_during_training_keeps_the_best_checkpoint(repo):
    child = spawn_course(repo, "train", "--epochs", "200", *TINY, timeout=120)
    child.expect(r"saved")  # at least one checkpoint is on disk
    child.sendintr()
    child.expect(r"Stopped: the best checkpoint \(epoch \d+, validation loss \d+\.\d+\) is in checkpoint/")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 130
    no_traceback(child.before)
    assert leftovers(repo) == []
    out = run_course(repo, "chat", input_text="The\n")
    assert out.returncode == 0, "the checkpoint that was kept loads"


def test_chat_at_the_prompt(trained_repo):
    child = spawn_course(trained_repo, "chat", "--seed", "1")
    child.expect("you>")
    child.sendline("/help")
    child.expect("/topk K")
    child.expect("you>")
    child.sendline("/temp -1")
    child.expect("the temperature must be 0 or more")
    child.sendline("/len 8")
    child.expect("length 8")
    child.sendline("The cat")
    child.expect("The cat")
    child.expect("you>")
    child.sendeof()  # Ctrl+D
    child.expect("Bye")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    no_traceback(child.before)


def pexpect_eof():
    import pexpect

    return pexpect.EOF
