"""Running course.py as a learner does: without a terminal, or in a real pseudo-terminal."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


# A model small enough to train in a second or two; one thread, since the thread probe has a test of its own.
TINY = ["--d_model", "16", "--n_heads", "2", "--n_layers", "1", "--d_ff", "32", "--block_size", "16",
        "--bpe_vocab_size", "280", "--batch_size", "8", "--lr", "3e-3", "--threads", "1"]


def small_text(repo: Path) -> str:
    """The first 150 lines of the bundled corpus, in small.txt: enough for a tiny model, fast to train on."""
    lines = (repo / "data/corpus_en.txt").read_text().splitlines()[:150]
    (repo / "small.txt").write_text("\n".join(lines) + "\n")
    return "small.txt"


def course_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COURSE_"))}
    env.update(NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="200")
    env.pop("LANGUAGE", None)
    env.update(extra)
    return env


def run_course(repo: Path, *args: str, timeout: float = 120, input_text: str | None = None,
               **env) -> subprocess.CompletedProcess:
    """python course.py ARGS in `repo`, without a terminal: standard input is `input_text` (or closed)."""
    stdin = {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "course.py", *args], cwd=repo, env=course_env(**env),
                          capture_output=True, text=True, timeout=timeout, **stdin)


def spawn_course(repo: Path, *args: str, timeout: float = 60, **env):
    """python course.py ARGS in `repo`, in a real pseudo-terminal."""
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(sys.executable, ["course.py", *args], cwd=str(repo), env=course_env(TERM="xterm", **env),
                         encoding="utf-8", timeout=timeout, dimensions=(50, 200))


def solve(repo: Path, module: str) -> None:
    """Put the reference in place of the learner's file, as if the learner had written it."""
    shutil.copyfile(repo / "solutions" / f"{module}.py", repo / "exercises" / f"{module}.py")
