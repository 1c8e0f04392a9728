"""The course checks itself: every check fails on the stub and passes on the reference, and every wrong
implementation in tests/mutants/ is caught by a check whose message names the mistake.

A mutant is a small, plausible mistake written as a patch on the reference (tests/mutants/stepNN.toml):
`find` must occur exactly once in solutions/stepNN_*.py; it is replaced by `replace`; at least one check of
that step must then fail with a message containing `expect`.
"""

import difflib
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kata import steps
from kata.checking import run_in_process

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = steps.ROOT
MUTANTS = Path(__file__).parent / "mutants"
READY = [s for s in steps.all_steps() if s.checks().exists() and s.solution().exists() and s.stub().exists()]


def load_mutants() -> list:
    cases = []
    for step in READY:
        path = MUTANTS / f"step{step.number:02d}.toml"
        if path.exists():
            with open(path, "rb") as f:
                for i, m in enumerate(tomllib.load(f)["mutant"]):
                    cases.append(pytest.param(step, i + 1, m, id=f"step{step.number:02d}-{i + 1}-{m['name'][:40]}"))
    return cases


def make_package(tmp_path: Path, name: str, step: steps.Step | None = None, mutant: dict | None = None) -> Path:
    """A copy of solutions/ under a fresh package name, with one mutant applied."""
    package = tmp_path / name
    shutil.copytree(ROOT / "solutions", package, ignore=shutil.ignore_patterns("__pycache__"))
    if mutant is not None:
        target = package / f"{step.module}.py"
        source = target.read_text(encoding="utf-8")
        found = source.count(mutant["find"])
        assert found == 1, f"mutant {mutant['name']!r}: its `find` text occurs {found} times in {step.module}.py, not once"
        target.write_text(source.replace(mutant["find"], mutant["replace"]), encoding="utf-8")
    return package


@pytest.mark.parametrize("step", READY, ids=lambda s: f"step{s.number:02d}")
def test_every_check_fails_on_the_stub(step):
    results = run_in_process([step.checks()], "kata.stubs")
    assert results, f"no checks ran for step {step.number}"
    passing = [r.name for r in results if r.outcome != "failed"]
    assert not passing, f"step {step.number}: these checks do not fail on the stub: {passing}"
    untold = [r.name for r in results if not r.reason]
    assert not untold, f"step {step.number}: these checks fail without saying why: {untold}"
    # An untouched stub is told only what to write: a diagnosis of a mistake nobody made yet misleads.
    guessed = [f"{r.name}: {r.reason}" for r in results if not r.reason.startswith("write `")]
    assert not guessed, f"step {step.number}: on the untouched stub these checks name a cause: {guessed[:3]}"


@pytest.mark.parametrize("step", READY, ids=lambda s: f"step{s.number:02d}")
def test_every_check_passes_on_the_reference(step, tmp_path):
    # Under a fresh package name, as the mutants run: this proves the harness itself lets the reference through.
    package = make_package(tmp_path, f"reference_step{step.number:02d}")
    results = run_in_process([step.checks()], str(package), package)
    assert results, f"no checks ran for step {step.number}"
    failing = [f"{r.name}: {r.reason}" for r in results if r.outcome not in ("passed", "skipped")]
    assert not failing, f"step {step.number}: the reference fails: {failing}"


SAMPLE_EVERY = 4  # the default run takes mutants 1, 5, 9, ... of each step; --mutants all takes every one


def in_sample(number: int) -> bool:
    return (number - 1) % SAMPLE_EVERY == 0


def pytest_generate_tests(metafunc):
    if "mutant" in metafunc.fixturenames:
        everything = metafunc.config.getoption("--mutants", "sample") == "all"
        metafunc.parametrize("step,number,mutant",
                             [p for p in load_mutants() if everything or in_sample(p.values[1])])


def test_the_checks_catch_the_mutant_and_name_no_other_mistake(step, number, mutant, tmp_path):
    """Caught, by a message that names this mistake, and by no message that names another mistake's cause.

    The default run takes a fixed quarter of each step's mutants; `--mutants all` (CI, and before a commit that
    changes a check) takes every one. A mistake's cause phrase is compared against all of the step's mutants
    either way.

    A mutant's `expect` is the phrase a message uses only when it has confirmed that cause; another mutant's
    phrase in a failing message would send the learner after the wrong mistake. `also` lists the phrases of
    other mistakes that this one really commits too (a swap is two misplacements)."""
    package = make_package(tmp_path, f"mutant_step{step.number:02d}_{number}", step, mutant)
    results = run_in_process([step.checks()], str(package), package)
    failed = [r for r in results if r.outcome == "failed"]
    assert failed, f"no check of step {step.number} catches the mutant {mutant['name']!r}"
    phrase = mutant["expect"].lower()
    named = [r for r in failed if phrase in r.reason.lower()]
    assert named, (f"the mutant {mutant['name']!r} is caught, but no message says {mutant['expect']!r}; "
                   f"the messages: {[r.reason for r in failed]}")
    wrong = misdiagnoses(step, mutant, failed) if step.number in EXACT_DIAGNOSES else []
    assert not wrong, f"the mutant {mutant['name']!r} is told of another mistake: {wrong[:3]}"


def misdiagnoses(step, mutant: dict, failed: list) -> list[str]:
    """The failing messages that name the cause of another mutant of the same step."""
    own = {mutant["expect"].lower(), *(p.lower() for p in mutant.get("also", []))}
    others = {m["expect"].lower() for m in MUTANTS_OF.get(step.number, [])} - own
    others = {p for p in others if not any(p in o for o in own)}  # a phrase inside one's own is one's own
    return [f"{r.name}: {p!r} in {r.reason!r}" for r in failed for p in sorted(others) if p in r.reason.lower()]


# The steps whose messages are proven to name no other mistake (the rest are being brought to it).
EXACT_DIAGNOSES: set[int] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

MUTANTS_OF: dict[int, list[dict]] = {}
for _param in load_mutants():
    MUTANTS_OF.setdefault(_param.values[0].number, []).append(_param.values[2])


def test_every_step_has_at_least_two_mutants():
    counts = {}
    for param in load_mutants():
        step = param.values[0]
        counts[step.number] = counts.get(step.number, 0) + 1
    few = {s.number: counts.get(s.number, 0) for s in READY if counts.get(s.number, 0) < 2}
    assert not few, f"steps with fewer than two mutants: {few}"


def test_the_stubs_in_exercises_are_the_pristine_ones():
    """exercises/ and kata/stubs/ hold the same stubs in the repository (your own edits are left alone)."""
    tracked = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "exercises"], cwd=ROOT).returncode == 0 \
        if (ROOT / ".git").exists() and shutil.which("git") else False
    if not tracked:
        pytest.skip("exercises/ differs from the last commit (your own work), or this is not a git checkout")
    for step in steps.all_steps():
        exercise, stub = step.exercise(), step.stub()
        if not exercise.exists() and not stub.exists():
            continue
        same = exercise.exists() and stub.exists() and filecmp.cmp(exercise, stub, shallow=False)
        if not same:
            diff = "".join(difflib.unified_diff(
                stub.read_text().splitlines(True) if stub.exists() else [],
                exercise.read_text().splitlines(True) if exercise.exists() else [], "kata/stubs", "exercises"))
            pytest.fail(f"exercises/{step.module}.py and kata/stubs/{step.module}.py differ:\n{diff[:2000]}")


def test_stubs_mark_the_learners_place():
    for step in READY:
        text = step.stub().read_text(encoding="utf-8")
        assert "TODO" in text and "raise NotImplementedError" in text, \
            f"kata/stubs/{step.module}.py needs a TODO and `raise NotImplementedError` where the learner writes"
