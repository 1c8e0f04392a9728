"""A pytest plugin that records every check's verdict with one line saying why.

course.py runs a step's checks in a child process with `-p kata.collector --course-results FILE`; each
finished check is appended to FILE as one JSON line, so even a run that dies half-way leaves what it got.
The course's own tests use `Collector` in-process. Turning an exception into words is `explain()`.
"""

import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

TIMEOUT_MARK = "Timeout"  # pytest-timeout fails a check with "Timeout (>10.0s) from pytest-timeout."


@dataclass
class CheckResult:
    nodeid: str
    name: str            # the check's function name with its parameters: test_merge[aaa]
    title: str           # the name as a sentence: "merge [aaa]"
    outcome: str         # "passed", "failed", "skipped" or "not run"
    kind: str = ""       # why it failed: "todo", "syntax", "import", "timeout", "assert", "error"
    reason: str = ""     # one line, in words
    detail: str = ""     # a few more lines where they help (the code line and a caret for a syntax error)
    traceback: str = ""  # the whole story, shown with -v
    seconds: float = 0.0

    @property
    def function(self) -> str:
        """The check's function name without parameters, which is what hints are keyed by."""
        return self.name.split("[")[0]


def title_of(name: str, params: dict | None = None) -> str:
    """test_merge_replaces_every_occurrence[aaa] -> "merge replaces every occurrence [aaa]".

    Where pytest made the case's id up (`[ids1-512--1]`), the case is named by its parameters instead:
    "as token array refuses ids outside the vocabulary (ids: 3 values, vocab_size 512, bad -1)".
    """
    base, _, ids = name.partition("[")
    words = base.removeprefix("test_").replace("_", " ")
    if not ids:
        return words
    if params and _made_up(ids.rstrip("]"), params):
        named = [_in_words(key, value) for key, value in params.items()]
        named = [n for n in named if n]
        if named:
            return f"{words} ({', '.join(named)})"
    return f"{words} [{ids}"


def _made_up(ids: str, params: dict) -> bool:
    """pytest's own ids are a parameter's name and a number (ids1) where the value has no short form."""
    return any(re.fullmatch(rf"{re.escape(key)}\d+", part) for part in ids.split("-") for key in params)


def _in_words(key: str, value) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        shown = repr(value) if isinstance(value, str) else str(value)
        return f"{key} {shown}" if len(shown) <= 24 else f"{key}: {len(value)} characters" if isinstance(
            value, str) else f"{key} {shown[:24]}"
    if isinstance(value, (list, tuple)):
        return f"{key} {list(value)}" if len(str(list(value))) <= 24 else f"{key}: {len(value)} values"
    shape = getattr(value, "shape", None)
    return f"{key} of shape {tuple(shape)}" if shape is not None else ""


class Collector:
    def __init__(self, package_dir: Path | None = None, path: Path | None = None, timeout: float | None = None,
                 stop_when=None):
        self.package_dir = package_dir   # where the implementation under test lives (exercises/, ...)
        self.stop_when = stop_when       # stop_when(result) -> True ends the session after that check
        self.path = path                 # JSON-lines file to append to, or None to keep results in memory
        self.timeout = timeout
        self.results: list[CheckResult] = []
        self.collected: list[str] = []
        self._found = False
        self._phases: dict[str, CheckResult] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        result = self._phases.get(item.nodeid)
        if result is None:
            result = self._phases[item.nodeid] = CheckResult(item.nodeid, item.name, title_of(
                item.name, getattr(getattr(item, "callspec", None), "params", None)), "passed")
        result.seconds += report.duration
        if report.skipped and result.outcome == "passed":
            result.outcome = "skipped"
            result.reason = _skip_reason(report)
        elif report.failed and result.outcome != "failed":
            result.outcome = "failed"
            result.kind, result.reason, result.detail = explain(call.excinfo, self.package_dir, self.timeout)
            result.traceback = report.longreprtext
            if result.kind == "timeout":  # the rest of the step would most likely hang as well
                item.session.shouldstop = "a check ran too long"
        if call.when == "teardown":
            finished = self._phases.pop(item.nodeid)
            self._finish(finished)
            if self.stop_when is not None and self.stop_when(finished):
                self._found = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        # Once stop_when has found its check, the rest are passed over quietly (session.shouldstop would be
        # reported as an interruption, with a traceback pytest takes a fifth of a second to format).
        return True if self._found else None

    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]
        self._write({"collected": self.collected})

    def pytest_collectreport(self, report):
        if report.failed:  # a check file that cannot even be read: the course's bug, not the learner's
            name = Path(report.nodeid).name or report.nodeid
            last = str(report.longrepr).strip().splitlines()[-1:] or [""]
            self._finish(CheckResult(report.nodeid, name, f"loading {name}", "failed", "error",
                                     f"the checks could not be loaded: {last[0]}", "", report.longreprtext))

    def _finish(self, result: CheckResult) -> None:
        self.results.append(result)
        self._write(asdict(result))

    def _write(self, record: dict) -> None:
        if self.path is not None:
            # Closing hands the line to the operating system, which keeps it even if this process is killed.
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def explain(excinfo, package_dir: Path | None, timeout: float | None = None) -> tuple[str, str, str]:
    """(kind, reason, detail) for a failed check: what went wrong, in one line a learner can act on."""
    if excinfo is None:
        return "error", "the check failed", ""
    exc = excinfo.value
    learner = _learner_frame(excinfo, package_dir)
    where = f"`{learner[2]}()` ({learner[0]}, line {learner[1]})" if learner else ""

    if isinstance(exc, SyntaxError):
        path = _show_path(Path(exc.filename)) if exc.filename else "your file"
        text = (exc.text or "").rstrip("\n")
        caret = ""
        if text and exc.offset:
            stripped = text.lstrip()
            caret = " " * (exc.offset - 1 - (len(text) - len(stripped))) + "^"
            text = stripped
        detail = f"    {text}\n    {caret}" if text else ""
        return "syntax", f"syntax error in {path}, line {exc.lineno}: {exc.msg}", detail
    if isinstance(exc, NotImplementedError) and learner:
        return "todo", f"write `{learner[2]}()` in {learner[0]}", ""
    message = str(exc).strip()
    if TIMEOUT_MARK in message and "pytest-timeout" in message:
        limit = f" after {timeout:g} s" if timeout else ""
        inside = f" inside {where}" if where else ""
        return "timeout", f"stopped{limit}{inside}: is there a loop that never ends?", ""
    if isinstance(exc, AssertionError):
        first = message.splitlines()[0] if message else "an assertion failed"
        return "assert", first, ""
    first = message.splitlines()[0] if message else ""
    summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if _while_importing(excinfo) and learner:
        return "import", f"{_step_of(learner[0])}{learner[0]} cannot be imported: {summary} (line {learner[1]})", ""
    if learner:
        return "error", f"{summary} in {where}", ""
    return "error", summary, ""


def _learner_frame(excinfo, package_dir: Path | None):
    """(file, line, function) of the deepest traceback entry inside the implementation under test."""
    if package_dir is None:
        return None
    package_dir = Path(package_dir).resolve()
    found = None
    tb = excinfo.tb
    while tb is not None:
        code = tb.tb_frame.f_code
        path = Path(code.co_filename)
        if path.is_absolute() and package_dir in path.resolve().parents:
            name = getattr(code, "co_qualname", code.co_name)
            if name == "<module>":
                name = path.stem
            found = (_show_path(path), tb.tb_lineno, name)
        tb = tb.tb_next
    return found


def _while_importing(excinfo) -> bool:
    tb = excinfo.tb
    while tb is not None:
        if "importlib" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _step_of(path: str) -> str:
    """"exercises/step03_embeddings.py" -> "step 3, " (the step a learner's file belongs to), else ""."""
    stem = Path(path).stem
    if stem.startswith("step") and stem[4:6].isdigit():
        return f"step {int(stem[4:6])}, "
    return ""


def _show_path(path: Path) -> str:
    """A path as the learner knows it: relative to the working directory where possible."""
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# -- pytest entry points for `-p kata.collector` ------------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("course runner")
    group.addoption("--course-results", metavar="FILE", help="append each check's verdict to FILE (JSON lines)")
    group.addoption("--course-code", metavar="DIR", help="the folder of the code under test, to point at its lines")


def pytest_configure(config):
    path = config.getoption("--course-results")
    if path:
        code = config.getoption("--course-code")
        collector = Collector(Path(code) if code else None, Path(path), _timeout_of(config))
        config.pluginmanager.register(collector, "course-collector")


def pytest_sessionfinish(session, exitstatus):
    session.config._course_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if config.getoption("--course-results"):
        # The verdicts are written; skip the interpreter's clean-up, which takes most of a second with torch
        # loaded. This is course.py's child process only, never a pytest run of yours.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_course_exitstatus", 0))


def _timeout_of(config) -> float | None:
    value = config.getoption("timeout", default=None)
    if value is None:
        value = config.getini("timeout") or None
    return float(value) if value else None
