"""Running a step's checks against an implementation, and reading back the verdicts.

course.py runs the checks in a child process: your code may loop forever, crash the interpreter or change as
you edit it, and each run must import it fresh. The course's own tests run them in-process, which is faster.

The child writes a line as each check starts and another as it ends (collector.py), and course.py watches
them. A check still running past its limit and a grace period (its code ignored pytest-timeout's alarm, or
loops in C or in a thread) is stopped from here, after faulthandler has written where it was. A check during
which the process ended (os._exit, a kill, a segmentation fault) is named with the function of yours it was
in: from faulthandler's stacks where the process could write them, else by running that check once more
with a trace of the functions it calls.
"""

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .collector import STACKS_SIGNAL, TOO_LONG, CheckResult, Collector, Spot, read_innermost, title_of
from .steps import ROOT, Step

# Seconds one check may run before it is stopped (an infinite loop, most likely); COURSE_CHECK_TIMEOUT overrides.
CHECK_TIMEOUT = float(os.environ.get("COURSE_CHECK_TIMEOUT", "10"))
GRACE = 2.0  # seconds past a check's limit before course.py stops the child itself: pytest-timeout goes first
POLL = 0.05  # seconds between two looks at the child's verdicts
SIGNAL_WORDS = {"SIGSEGV": "a segmentation fault", "SIGBUS": "a bus error", "SIGFPE": "an arithmetic fault",
                "SIGILL": "an illegal instruction", "SIGABRT": "an abort"}


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
    code = code_dir(package, root)
    args = [*files, "--impl", package, "--course-code", str(code), *(["--exitfirst"] if until_failure else []),
            f"--timeout={timeout:g}", "--tb=short" if tracebacks else "--tb=no"]
    # The per-check limit stops an endless loop; this outer one only guards against a stuck interpreter.
    outer = 60 + timeout * 3 * len(steps)
    with tempfile.TemporaryDirectory(prefix="course-checks-") as scratch:
        child = _run_child(args, root, Path(scratch) / "run", timeout, outer)
        ended = child.ended_in()
        spot = child.spot(code)
        if ended and not child.stuck and not child.outer and spot is None and not until_failure:
            # Nothing was written as the process ended: run that check alone, tracing the functions it calls.
            innermost = Path(scratch) / "innermost"
            again = _run_child([*args, "--course-trace", ended, str(innermost)], root, Path(scratch) / "again",
                               timeout, outer)
            if again.ended_in() == ended:
                spot = again.spot(code) or _spot_of(read_innermost(innermost))
        results = _results(child, spot, timeout, outer)
    return _reports(steps, results, child.collected(), child.output)


@dataclass
class _Child:
    """What one child process left: its records, how it ended, and the stacks faulthandler wrote."""
    records: list[dict]
    returncode: int
    output: str        # the end of pytest's own output
    stacks: str        # faulthandler's: a crash's stacks, or the stuck check's
    stuck: str = ""    # the check course.py stopped, having run past its limit
    outer: bool = False  # the whole run took too long and was stopped

    def collected(self) -> list[str]:
        return [nodeid for r in self.records if "collected" in r for nodeid in r["collected"]]

    def finished(self) -> dict | None:
        """The child's last line when the session ended by itself; None when the process died first."""
        return next((r for r in self.records if "finished" in r), None)

    def ended_in(self) -> str:
        """The check that started and never finished, where the process died or was stopped ("" if none)."""
        running = ""
        for r in self.records:
            if "started" in r:
                running = r["started"]
            elif r.get("nodeid") == running:
                running = ""
        return running

    def spot(self, code: Path) -> Spot | None:
        return _stack_spot(self.stacks, code)


def _run_child(args: list[str], root: Path, base: Path, timeout: float, outer: float) -> _Child:
    """Run pytest with `args` in a child process, watched (`_watch`); `base` names its scratch files."""
    results, stacks, output = (base.with_suffix(suffix) for suffix in (".jsonl", ".stacks", ".out"))
    results.touch()
    command = [
        sys.executable, "-m", "pytest", *args, "-p", "pytest_timeout", "-p", "_hypothesis_pytestplugin",
        "-p", "kata.collector", "--course-results", str(results), "--course-stacks", str(stacks),
        "-q", "--no-header", "--show-capture=no",
        # unraisableexception runs five full garbage collections at the end: most of a second with torch loaded.
        # pytest's own faulthandler would take over the one that writes to `stacks`.
        "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-p", "no:faulthandler",
        "-W", "ignore::DeprecationWarning",
    ]
    # Only the plugins the checks need: others installed beside them (anyio, benchmark...) cost startup time.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)
    with open(output, "w+b") as out:
        # A session of its own: a Ctrl+C stops course.py, which stops the child, and whatever the code under
        # test started goes with it. Output goes to a file: code that prints without end cannot fill a pipe.
        proc = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            stuck, too_long = _watch(proc, results, stacks, timeout, outer)
        finally:
            if proc.poll() is None:  # course.py itself was interrupted
                _kill(proc)
        out.seek(max(0, out.seek(0, os.SEEK_END) - 4000))
        tail = out.read().decode("utf-8", errors="replace")
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    written = stacks.read_text(encoding="utf-8", errors="replace") if stacks.exists() else ""
    return _Child(records, proc.returncode, tail, written, stuck, too_long)


def _watch(proc: subprocess.Popen, results: Path, stacks: Path, timeout: float, outer: float) -> tuple[str, bool]:
    """Wait for the child to end. A check running past timeout + GRACE, or the whole run past `outer`, stops
    it; returns (the stuck check's node id or "", whether the whole run was stopped)."""
    began = time.monotonic()
    running, since, read = "", 0.0, 0
    while True:
        try:
            proc.wait(timeout=POLL)
            return "", False
        except subprocess.TimeoutExpired:
            pass
        with open(results, "rb") as f:
            f.seek(read)
            chunk = f.read()
        chunk = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
        read += len(chunk)
        for line in chunk.splitlines():
            record = json.loads(line)
            if "started" in record:
                running, since = record["started"], time.monotonic()
            elif record.get("nodeid") == running:
                running = ""
        now = time.monotonic()
        if running and now - since > timeout + GRACE or now - began > outer:
            _kill(proc, stacks)
            return running, not (running and now - since > timeout + GRACE)


def _kill(proc: subprocess.Popen, stacks: Path | None = None) -> None:
    """End the child and all it started; with `stacks`, first ask faulthandler there to write where it is."""
    if stacks is not None:
        try:
            os.kill(proc.pid, STACKS_SIGNAL)
        except ProcessLookupError:
            return
        for _ in range(20):  # faulthandler writes from its signal handler as soon as the child is scheduled
            time.sleep(POLL)
            if stacks.exists() and stacks.stat().st_size:
                time.sleep(POLL)
                break
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _stack_spot(stacks: str, code: Path) -> Spot | None:
    """The innermost frame of the code under test in faulthandler's stacks, from the thread that runs the
    check where that thread is in it."""
    found = None
    inside = Path(code).resolve()
    for block in re.split(r"\n(?=(?:Current thread|Thread) 0x)", stacks):
        frames = re.findall(r'^\s+File "(.+)", line (\d+) in (\S+)\s*$', block, re.M)  # most recent call first
        for path, line, name in frames:
            file = Path(path)
            if file.is_absolute() and inside in file.resolve().parents:
                spot = Spot(_shown(file), int(line), _qualname(file, int(line), name), file, name == "<module>")
                if any("_pytest" in p for p, _, _ in frames):
                    return spot
                found = found or spot
                break
    return found


def _spot_of(innermost: tuple[str, int, str] | None) -> Spot | None:
    """The function an `Innermost` file names (its first line stands for the line, which it does not know)."""
    if innermost is None:
        return None
    path, line, name = innermost
    module = name == "<module>"
    return Spot(_shown(Path(path)), line, Path(path).stem if module else name, Path(path), module)


def _qualname(file: Path, line: int, name: str) -> str:
    """faulthandler names a function without its class: find the def around `line` for MLP.forward."""
    try:
        tree = ast.parse(file.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return name
    if name == "<module>":
        return file.stem
    found, todo = name, [(tree, "")]
    while todo:
        node, prefix = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = prefix + child.name
                if child.lineno <= line <= (child.end_lineno or child.lineno):
                    if child.name == name:
                        found = qualname
                    inner = ".<locals>." if not isinstance(child, ast.ClassDef) else "."
                    todo.append((child, qualname + inner))
            else:
                todo.append((child, prefix))
    return found


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _how(returncode: int) -> str:
    """How a process ended, in words: "exit code 3", "a segmentation fault, SIGSEGV", "killed by SIGKILL"."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
    return f"{SIGNAL_WORDS[name]}, {name}" if name in SIGNAL_WORDS else f"killed by {name}"


def _results(child: _Child, spot: Spot | None, timeout: float, outer: float) -> list[CheckResult]:
    """Every collected check's verdict: the ones the child wrote, the check it stopped in, and the rest, not
    run, each saying why."""
    results = [CheckResult(**r) for r in child.records if "nodeid" in r]
    titles = {r.nodeid: r.title for r in results}
    ended = child.ended_in()
    if ended:
        name = ended.split("::")[-1]
        title = titles[ended] = title_of(name)
        if child.stuck or child.outer:
            limit = f"{timeout:g} s" if child.stuck else f"{outer:g} s in all"
            inside = f" inside {spot.where()}:" if spot else ": the check did not finish;"
            reason = f"stopped after {limit}{inside} is there a loop that never ends?"
            results.append(CheckResult(ended, name, title, "failed", "timeout", reason))
        else:
            how = _how(child.returncode)
            if spot is None:
                reason = f"the process ended during this check ({how})"
            elif spot.module:
                reason = f"the process ended while {spot.path} was being imported ({how})"
            elif child.stacks:  # faulthandler's stacks know the line
                reason = f"the process ended inside {spot.where()}: {how}"
            else:
                reason = f"the process ended inside `{spot.function}()` in {spot.path} ({how})"
            results.append(CheckResult(ended, name, title, "failed", "crash", reason))
    seen = {r.nodeid for r in results}
    rest = _not_run_reason(child, titles, results, outer)
    for nodeid in child.collected():  # checks that never reported: the run stopped before them
        if nodeid not in seen:
            name = nodeid.split("::")[-1]
            results.append(CheckResult(nodeid, name, title_of(name), "not run", reason=rest))
    return results


def _not_run_reason(child: _Child, titles: dict[str, str], results: list[CheckResult], outer: float) -> str:
    ended = child.ended_in()
    if child.outer:
        return f"not run: the checks were stopped after {outer:g} s in all"
    if child.stuck:
        return f"not run: the checks stopped after “{titles[ended]}” ran too long"
    if ended:
        return f"not run: the checks stopped when the process ended during “{titles[ended]}”"
    finished = child.finished()
    if finished is None:
        return f"not run: the process running the checks ended before this one ({_how(child.returncode)})"
    last = next((r for r in reversed(results) if r.outcome == "failed"), None)
    if finished["stopped"] == TOO_LONG and last is not None:
        return f"not run: the checks stopped after “{last.title}” ran too long"
    if finished["stopped"] and last is not None:
        return f"not run: this run stops at the first failing check, “{last.title}”"
    return "not run: pytest did not run this check"


def _reports(steps: list[Step], results: list[CheckResult], collected: list[str], output: str) -> list[StepReport]:
    order = {nodeid: i for i, nodeid in enumerate(collected)}
    reports = []
    for step in steps:
        mine = [r for r in results if Path(r.nodeid.split("::")[0]).stem == f"test_{step.module}"]
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
