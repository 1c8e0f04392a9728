"""Helpers for the course's own tests: a private copy of the repository to run course.py in."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", ".git", "progress.json*", "backups", "checkpoint*", "*.egg-info",
                                ".pytest_cache", ".hypothesis", ".ruff_cache", "benchmarks")


@pytest.fixture(scope="session")
def pristine_repo(tmp_path_factory) -> Path:
    """The repository as a fresh clone has it: exercises/ holds the original stubs."""
    copy = tmp_path_factory.mktemp("pristine") / "write-transformer"
    shutil.copytree(ROOT, copy, ignore=IGNORE)
    for stub in (copy / "kata" / "stubs").glob("step*.py"):
        shutil.copyfile(stub, copy / "exercises" / stub.name)
    return copy


@pytest.fixture
def repo(pristine_repo, tmp_path) -> Path:
    """A private copy for one test: it may break files, write progress and backups."""
    copy = tmp_path / "write-transformer"
    shutil.copytree(pristine_repo, copy)
    return copy


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, pristine_repo) -> Path:
    """A tiny model trained for one epoch on small.txt by `course.py train`, as a learner would: its folder."""
    from course_helpers import TINY, run_course, small_text

    repo = tmp_path_factory.mktemp("trained") / "write-transformer"
    shutil.copytree(pristine_repo, repo)
    out = run_course(repo, "train", small_text(repo), "--epochs", "1", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    return repo / "checkpoint"


@pytest.fixture
def trained_repo(repo, trained_checkpoint) -> Path:
    """A private copy of the repository holding that checkpoint, and small.txt to train on."""
    from course_helpers import small_text

    shutil.copytree(trained_checkpoint, repo / "checkpoint")
    small_text(repo)
    return repo


def pytest_collection_modifyitems(session, config, items):
    # The tests that drive course.py take seconds each: start them first, so that two workers finish together.
    items.sort(key=lambda item: 0 if "test_course_cli" in item.nodeid or "test_train" in item.nodeid else 1)
