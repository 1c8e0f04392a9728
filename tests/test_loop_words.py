"""What the learner reads in the loop: mistyped commands, GPT-2's flag names, counts that agree, whose code runs."""

import json
import shutil
import sys
import time

import pytest
from course_helpers import course_env, run_course

pytestmark = pytest.mark.timeout(180)

TRACEBACK = "Traceback (most recent call last)"


@pytest.mark.parametrize("typed, nearest", [("chek", "check"), ("lst", "list"), ("hnit", "hint"),
                                            ("sollution", "solution")])
def test_a_mistyped_command_names_the_nearest(repo, typed, nearest):
    out = run_course(repo, typed, "1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"did you mean: python course.py {nearest}?" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and TRACEBACK not in out.stderr, "one sentence"
    assert "invalid choice" not in out.stderr, "not argparse's bare list"


def test_an_unknown_command_far_from_any_points_to_help(repo):
    out = run_course(repo, "xyzzy")
    assert out.returncode == 2 and "the commands: python course.py --help" in out.stderr, out.stderr


def test_a_mistyped_command_in_polish(repo):
    out = run_course(repo, "--lang", "pl", "chek")
    assert out.returncode == 2 and "może chodziło o: python course.py check?" in out.stderr, out.stderr


def test_gpt2_flag_names_and_counts_that_agree(repo):
    """--n_embd --n_head --n_layer are GPT-2's names for --d_model --n_heads --n_layers; "1 epoch", not "1 epochs"."""
    out = run_course(repo, "train", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--d_ff", "32",
                     "--bpe_vocab_size", "280", "--epochs", "1", "--batch_size", "8", OMP_NUM_THREADS="2")
    assert out.returncode == 0, out.stdout + out.stderr
    config = json.loads((repo / "checkpoint/config.json").read_text())
    assert (config["n_embd"], config["n_head"], config["n_layer"]) == (16, 2, 1)
    assert "Training: 1 epoch of " in out.stdout and "1 epochs" not in out.stdout, out.stdout
    assert "Model: 1 layer, 2 heads," in out.stdout, out.stdout
    assert "the fastest of a short probe (ms per step by threads, 1: " in out.stdout, "the threads chosen, said"
    out = run_course(repo, "train", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--d_ff", "32",
                     "--bpe_vocab_size", "280", "--epochs", "1", "--batch_size", "8", "--threads", "1")
    assert out.returncode == 0 and "on cpu, 1 thread: --threads" in out.stdout, out.stdout


def test_demo_1_on_the_reference_does_not_say_your_tokenizer(repo):
    out = run_course(repo, "demo", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "The reference tokenizer" in out.stdout and "Your tokenizer" not in out.stdout, out.stdout
    assert "run by your encode" not in out.stdout


TINY = ["--d_model", "16", "--n_heads", "2", "--n_layers", "1", "--d_ff", "32", "--bpe_vocab_size", "280",
        "--epochs", "1", "--batch_size", "8", "--threads", "1"]  # the thread probe is shown in tests/test_loop_words.py


def passed_everything(repo) -> None:
    """The learner's files are the reference's, and progress says each step passed its last check."""
    for stub in (repo / "kata/stubs").glob("step*.py"):
        shutil.copyfile(repo / "solutions" / stub.name, repo / "exercises" / stub.name)
    n = len(list((repo / "kata/stubs").glob("step*.py")))
    (repo / "progress.json").write_text(json.dumps(
        {"version": 1, "current": n, "unlocked": n, "passed": list(range(1, n + 1)), "quiz": {}, "hints": {},
         "lang": "en", "finished": False}))


def test_whose_code_trains_and_talks(repo):
    """The reference until every step passes, then the learner's own code; said on screen; --mine/--reference."""
    out = run_course(repo, "train", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Using the reference code in solutions/: your steps 1, 2, 3" in out.stdout, out.stdout

    chat = run_course(repo, "chat", "--mine", input_text="The\n")
    assert chat.returncode == 2 and TRACEBACK not in chat.stdout + chat.stderr, chat.stdout + chat.stderr
    assert len(chat.stderr.strip().splitlines()) == 1 and "is not written yet" in chat.stderr, chat.stderr
    assert "exercises/step" in chat.stderr, "the sentence names the file to write"

    passed_everything(repo)
    out = run_course(repo, "train", *TINY)
    assert out.returncode == 0 and "Using your code in exercises/: every step passes" in out.stdout, out.stdout
    chat = run_course(repo, "chat", input_text="The\n")
    assert chat.returncode == 0 and "Using your code in exercises/" in chat.stdout, chat.stdout + chat.stderr
    chat = run_course(repo, "chat", "--reference", input_text="The\n")
    assert chat.returncode == 0 and "Using the reference code in solutions/ (--reference)" in chat.stdout
    both = run_course(repo, "chat", "--reference", "--mine")
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_long_lesson_opens_in_a_pager_with_its_formatting(repo):
    if shutil.which("less") is None:
        pytest.skip("no less on this machine: the lesson prints as it is")
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["course.py", "lesson", "1"], cwd=str(repo), encoding="utf-8",
                          timeout=30, dimensions=(24, 80), env=course_env(TERM="xterm", PAGER="less", COLUMNS="80", LINES="24"))
    child.expect(r"\x1b\[[0-9;]*m")  # formatting reaches the pager: less -R lets the colours through
    child.expect(r":\x1b\[K")  # less's prompt at the foot of its first screen
    time.sleep(0.5)
    assert child.isalive(), "the lesson waits in the pager instead of scrolling past"
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
