"""Running a step's checks against an implementation, and reading back the verdicts.

course.py runs the checks in a child process: your code may loop forever, crash the interpreter or change as
you edit it, and each run must import it fresh. The course's own tests run them in-process, which is faster.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .collector import CheckResult, Collector, title_of
from .steps import ROOT, Step

# Seconds one check may run before it is stopped (an infinite loop, most likely); COURSE_CHECK_TIMEOUT overrides.
CHECK_TIMEOUT = float(os.environ.get("COURSE_CHECK_TIMEOUT", "10"))


@dataclass
class StepReport:
    step: Step
    results: list[CheckResult] = field(default_factory=list)
    problem: str = ""  # the run itself went wrong (not a check): one line

    @property
    def passed(self) -> bool:
        return bool(self.results) and not self.problem and all(r.outcome in ("passed", "skipped") for r in self.results)

    @property
    def counts(self) -> tuple[int, int]:
        return sum(r.outcome == "passed" for r in self.results), len(self.results)

    def first_failure(self) -> CheckResult | None:
        return next((r for r in self.results if r.outcome in ("failed", "not run")), None)


def code_dir(package: str, root: Path = ROOT) -> Path:
    """The folder of an implementation package: exercises -> <root>/exercises, kata.stubs -> <root>/kata/stubs."""
    path = Path(package)
    return path if path.is_absolute() else root.joinpath(*package.split("."))


def run_checks(steps: list[Step], package: str = "exercises", root: Path = ROOT,
               timeout: float = CHECK_TIMEOUT, tracebacks: bool = False,
               until_failure: bool = False) -> list[StepReport]:
    """Run the checks of `steps` against `package` in one child process; one report per step.

    tracebacks=True keeps each failure's whole traceback (for -v); writing them out takes pytest a second.
    until_failure=True stops at the first failing check: the steps before it pass, it fails, and the steps
    after it are not run (enough to find where a learner stands).
    """
    files = [str(s.checks(root)) for s in steps if s.checks(root).exists()]
    if not files:
        return [StepReport(s, problem="this step has no checks yet") for s in steps]
    fd, results_path = tempfile.mkstemp(prefix="course-results-", suffix=".jsonl")
    os.close(fd)
    command = [
        sys.executable, "-m", "pytest", *files,
        "--impl", package, "-p", "pytest_timeout", "-p", "_hypothesis_pytestplugin", "-p", "kata.collector",
        "--course-results", results_path, "--course-code", str(code_dir(package, root)),
        *(["--exitfirst"] if until_failure else []),
        f"--timeout={timeout:g}", "-q", "--no-header", "--tb=short" if tracebacks else "--tb=no",
        # unraisableexception runs five full garbage collections at the end: most of a second with torch loaded.
        "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-W", "ignore::DeprecationWarning",
    ]
    # Only the plugins the checks need: others installed beside them (anyio, benchmark...) cost startup time.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)
    try:
        # The per-check timeout stops an endless loop; this outer limit only guards against a stuck interpreter.
        outer = 60 + timeout * 3 * len(steps)
        proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=outer,
                              stdin=subprocess.DEVNULL)
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as stuck:
        output, returncode = f"stopped after {stuck.timeout:g} s", -1
    try:
        lines = Path(results_path).read_text(encoding="utf-8").splitlines()
    finally:
        Path(results_path).unlink(missing_ok=True)
    return _reports(steps, [json.loads(line) for line in lines if line.strip()], output, returncode)


def _reports(steps: list[Step], records: list[dict], output: str, returncode: int) -> list[StepReport]:
    collected = [nodeid for r in records if "collected" in r for nodeid in r["collected"]]
    results = [CheckResult(**r) for r in records if "nodeid" in r]
    seen = {r.nodeid for r in results}
    for nodeid in collected:  # checks that never reported: the run stopped before them
        if nodeid not in seen:
            name = nodeid.split("::")[-1]
            results.append(CheckResult(nodeid, name, title_of(name), "not run",
                                       reason="not run: an earlier check was stopped"))
    reports = []
    for step in steps:
        mine = [r for r in results if Path(r.nodeid.split("::")[0]).stem == f"test_{step.module}"]
        order = {nodeid: i for i, nodeid in enumerate(collected)}
        mine.sort(key=lambda r: order.get(r.nodeid, len(order)))
        report = StepReport(step, mine)
        if not mine:
            last = [line for line in output.strip().splitlines() if line.strip()][-3:]
            report.problem = "the checks could not run" + (": " + " / ".join(last) if last else "")
        reports.append(report)
    return reports


def run_in_process(check_files: list[Path], package: str, package_dir: Path | None = None,
                   extra_args: tuple[str, ...] = (), stop_when=None) -> list[CheckResult]:
    """Run check files in this process (for the course's own tests) and return the checks' verdicts.

    stop_when(result) -> True ends the run early: a mutant is caught as soon as one check names it.
    """
    import pytest

    collector = Collector(package_dir or code_dir(package), stop_when=stop_when)
    # No plugin autoload and no unraisable-exception hunt (five full garbage collections per session): each
    # run then costs a tenth of a second instead of a second, which matters for a hundred mutants.
    args = [*map(str, check_files), "--impl", package, "-q", "--no-header", "--tb=no", "-o", "addopts=",
            "-p", "no:cacheprovider", "-p", "no:timeout", "-p", "no:unraisableexception",
            "-p", "_hypothesis_pytestplugin", "--rootdir", str(ROOT), *extra_args]
    name = Path(package).name if Path(package).is_absolute() else package
    path, autoload = list(sys.path), os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            pytest.main(args, plugins=[collector])
        finally:
            sys.stdout = stdout
            if autoload is None:
                del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
            # Forget the package under test, so that a mutant with the same module names is imported afresh.
            for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[module]
            sys.path[:] = path
    return collector.results
