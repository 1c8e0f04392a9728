"""A check without an assertion is a defect: ruff's B015 (a comparison whose result is thrown away) and the
rest of the project's lint rules (pyproject.toml) must find nothing."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from kata.steps import ROOT


def ruff() -> list[str]:
    """The command that runs ruff: the module where this Python can import it, else the `ruff` on PATH.

    Skips the test when neither is there (except on CI, where a missing ruff is a failure to see).
    """
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    if shutil.which("ruff") is not None:
        return [shutil.which("ruff")]
    if os.environ.get("CI"):
        pytest.fail("ruff is neither importable nor on PATH; CI must install it (pip install -e '.[dev]')")
    pytest.skip("ruff is not installed: pip install -e '.[dev]'")


def test_the_code_passes_lint():
    out = subprocess.run([*ruff(), "check", "--output-format", "concise", "."],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"ruff finds problems:\n{out.stdout}{out.stderr}"


def test_no_check_compares_without_asserting():
    out = subprocess.run([*ruff(), "check", "--select", "B015,B011", "--output-format",
                          "concise", "checks"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"a comparison whose result is never asserted:\n{out.stdout}"
