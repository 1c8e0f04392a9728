"""A pytest plugin that records every check's verdict with one line saying why.

course.py runs a step's checks in a child process with `-p kata.collector --course-results FILE`; each
check appends a "started" line to FILE as it begins and its verdict as it ends, so even a run that dies
half-way leaves what it got and the check it was in. There, the code under test cannot end the run by raising
KeyboardInterrupt, and with --course-stacks and --course-trace the child leaves the clues course.py needs to
say where a crash or a hang happened (checking.py reads them). The course's own tests use `Collector`
in-process. Turning an exception into words is `explain()`; `Guard` keeps PyTorch as the checks found it.
"""

import codecs
import faulthandler
import json
import linecache
import os
import re
import signal
import sys
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

TIMEOUT_MARK = "Timeout"  # pytest-timeout fails a check with "Timeout (>10.0s) from pytest-timeout."
TOO_LONG = "a check ran too long"  # why the session stopped, in the child's "finished" line
STACKS_SIGNAL = signal.SIGUSR1  # course.py sends it to a stuck child: faulthandler then writes every stack


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


class CodeInterrupted(Exception):
    """A KeyboardInterrupt that the code under test raised itself, turned into its check's failure.

    Only in course.py's child, which runs in a session of its own: a Ctrl+C of yours stops course.py, which
    ends the child, so any KeyboardInterrupt inside the child comes from the code under test.
    """


class Collector:
    def __init__(self, package_dir: Path | None = None, path: Path | None = None, timeout: float | None = None,
                 stop_when=None, child: bool = False, trace: str | None = None, innermost: Path | None = None):
        self.package_dir = package_dir   # where the implementation under test lives (exercises/, ...)
        self.stop_when = stop_when       # stop_when(result) -> True ends the session after that check
        self.path = path                 # JSON-lines file to append to, or None to keep results in memory
        self.timeout = timeout
        self.child = child               # course.py's child process: a KeyboardInterrupt is the code's own
        self.trace = trace               # run only this check, keeping `innermost` up to date as it runs
        self.innermost = innermost
        self.results: list[CheckResult] = []
        self.collected: list[str] = []
        self._found = False
        self._phases: dict[str, CheckResult] = {}
        self._guard: Guard | None = None

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
                item.session.shouldstop = TOO_LONG
        if call.when == "teardown":
            changed = self._guard.changes() if self._guard else ""
            if changed:  # whatever else went wrong, this is what broke it, and it would break later checks
                result.outcome, result.kind, result.reason, result.detail = "failed", "error", changed, ""
            finished = self._phases.pop(item.nodeid)
            self._finish(finished)
            if self.stop_when is not None and self.stop_when(finished):
                self._found = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        # Once stop_when has found its check, the rest are passed over quietly (session.shouldstop would be
        # reported as an interruption, with a traceback pytest takes a fifth of a second to format).
        return True if self._found else None

    def pytest_runtest_logstart(self, nodeid, location):
        self._write({"started": nodeid})  # course.py's watch: which check runs now, and since when
        if nodeid == self.trace and self.innermost is not None:
            Innermost(self.package_dir, self.innermost).start()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        return (yield from self._interrupts_fail())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        return (yield from self._interrupts_fail())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        return (yield from self._interrupts_fail())

    def _interrupts_fail(self):
        try:
            return (yield)
        except KeyboardInterrupt as e:
            if not self.child:
                raise
            raise CodeInterrupted("KeyboardInterrupt") from e

    def pytest_collection_modifyitems(self, session, config, items):
        if self.trace is not None:
            items[:] = [item for item in items if item.nodeid == self.trace]

    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]
        self._write({"collected": self.collected})
        self._guard = Guard()  # the checks have imported torch by now

    def pytest_sessionfinish(self, session, exitstatus):
        # The run ended by itself: without this line, course.py knows that the process died.
        self._write({"finished": int(exitstatus), "stopped": str(session.shouldstop or session.shouldfail or "")})

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


class Guard:
    """PyTorch as the checks found it. A check during which the code under test deleted or replaced one of
    PyTorch's functions, or changed a global default, fails saying so; PyTorch is then put back as it was, so
    that the checks after it are not broken too."""

    def __init__(self):
        torch = sys.modules.get("torch")
        self.torch = torch
        if torch is None:
            return
        owners = {"torch": torch, "torch.nn": torch.nn, "torch.nn.functional": torch.nn.functional,
                  "torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module}
        self.saved = [(name, owner, dict(vars(owner))) for name, owner in owners.items()]
        self.dtype = torch.get_default_dtype()

    def changes(self) -> str:
        """What the last check changed, in one sentence ("" if nothing); PyTorch is as it was afterwards."""
        torch = self.torch
        if torch is None:
            return ""
        said = []
        for name, owner, then in self.saved:
            now = vars(owner)
            for key, value in then.items():
                new = now.get(key, _GONE)
                if new is value:
                    continue
                if new is not _GONE and not _foreign(new):
                    then[key] = new  # PyTorch's own doing (torch._dynamo wraps torch.manual_seed on import)
                    continue
                verb = "deleted" if new is _GONE else "replaced"
                said.append(f"your code {verb} `{name}.{key}`, which belongs to PyTorch: leave it as it is")
                setattr(owner, key, value)
        if torch.get_default_dtype() != self.dtype:
            said.append(f"your code changed PyTorch's default dtype to {torch.get_default_dtype()} "
                        f"(torch.set_default_dtype): leave it at {self.dtype}")
            torch.set_default_dtype(self.dtype)
        if not torch.is_grad_enabled():
            said.append("your code switched gradients off and left them off: use `with torch.no_grad():` "
                        "around the lines that need it instead")
            torch.set_grad_enabled(True)
        return said[0] if said else ""


_GONE = object()


def _foreign(value) -> bool:
    """Whether `value` was made by code outside PyTorch (a function of the learner's): a value that does not
    say where it comes from is given the benefit of the doubt."""
    where = value.__name__ if isinstance(value, type(sys)) else getattr(value, "__module__", None)
    return isinstance(where, str) and where.split(".")[0] not in ("torch", "functools", "typing", "builtins")


class Innermost:
    """Keeps a file saying which function of the code under test runs now, so that it still says so after
    the process ends without a word (os._exit, a kill): course.py reruns a check that ended its process
    this way with this on, and reads the file afterwards. Slow, so only for that one check."""

    WIDTH = 1024  # each update overwrites one record of this many bytes at the start of the file

    def __init__(self, package_dir: Path | None, path: Path):
        self.inside = str(Path(package_dir).resolve()) + os.sep if package_dir else None
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.mine: dict = {}  # code object -> whether it belongs to the code under test

    def start(self) -> None:
        threading.settrace(self._call)
        sys.settrace(self._call)

    def _is_mine(self, code) -> bool:
        mine = self.mine.get(code)
        if mine is None:
            name = code.co_filename
            mine = self.mine[code] = bool(self.inside and os.path.isabs(name)
                                          and os.path.realpath(name).startswith(self.inside))
        return mine

    def _call(self, frame, event, arg):
        if not self._is_mine(frame.f_code):
            return None
        frame.f_trace_lines = False  # only calls and returns, not every line
        self._say(frame)
        return self._local

    def _local(self, frame, event, arg):
        if event == "return":
            caller = frame.f_back
            while caller is not None and not self._is_mine(caller.f_code):
                caller = caller.f_back
            self._say(caller)
        return self._local

    def _say(self, frame) -> None:
        record = b""
        if frame is not None:
            code = frame.f_code
            record = f"{code.co_filename}\t{code.co_firstlineno}\t{code.co_qualname}".encode()[:self.WIDTH]
        os.pwrite(self.fd, record.ljust(self.WIDTH), 0)


def read_innermost(path: Path) -> tuple[str, int, str] | None:
    """(file, first line, function) that an `Innermost` file last named, or None."""
    try:
        parts = path.read_bytes()[:Innermost.WIDTH].decode(errors="replace").strip().split("\t")
    except OSError:
        return None
    return (parts[0], int(parts[1]), parts[2]) if len(parts) == 3 and parts[1].isdigit() else None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class Spot(NamedTuple):
    """A place in the code under test, as a learner reads it."""
    path: str      # relative to the working directory where possible: exercises/step06_feedforward.py
    line: int
    function: str  # MLP.forward, or the file's stem for the module's own lines
    file: Path     # the absolute path, to read the line from
    module: bool   # the module's own lines: it was being imported

    def where(self) -> str:
        return f"`{self.function}()` ({self.path}, line {self.line})"

    def code(self) -> str:
        """The line itself, stripped and short: `sys.exit()`."""
        text = linecache.getline(str(self.file), self.line).strip()
        return f"`{text[:60]}`" if text else f"line {self.line}"


def explain(excinfo, package_dir: Path | None, timeout: float | None = None) -> tuple[str, str, str]:
    """(kind, reason, detail) for a failed check: what went wrong, in one line a learner can act on."""
    if excinfo is None:
        return "error", "the check failed", ""
    exc, tb = excinfo.value, excinfo.tb
    if isinstance(exc, CodeInterrupted) and exc.__cause__ is not None:
        exc, tb = exc.__cause__, exc.__cause__.__traceback__
    spots = _learner_spots(tb, package_dir)
    learner = spots[-1] if spots else None
    where = learner.where() if learner else ""
    importing = _while_importing(tb)

    if isinstance(exc, (SyntaxError, ValueError, UnicodeError)) and importing:
        unreadable = _not_utf8_text(_imported_file(exc, tb, package_dir))
        if unreadable:
            return "syntax", unreadable, ""
    if isinstance(exc, SyntaxError):
        path = _show_path(Path(exc.filename)) if exc.filename else "your file"
        text = (exc.text or "").rstrip("\n")
        caret = ""
        if text and exc.offset:
            stripped = text.lstrip()
            caret = " " * max(0, exc.offset - 1 - (len(text) - len(stripped))) + "^"
            text = stripped
        detail = f"    {text}\n    {caret}" if text else ""
        line = f", line {exc.lineno}" if exc.lineno else ""
        return "syntax", f"syntax error in {path}{line}: {exc.msg}", detail
    if isinstance(exc, NotImplementedError) and learner:
        return "todo", f"write `{learner.function}()` in {learner.path}", ""
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
    if importing and learner and learner.module and not isinstance(exc, Exception):
        # SystemExit, KeyboardInterrupt...: the file does something when imported that only a program should do
        did = {SystemExit: "exits", KeyboardInterrupt: "stops with KeyboardInterrupt"}.get(
            type(exc), f"raises {type(exc).__name__}")
        return "import", (f"{_step_of(learner.path)}{learner.path} {did} when it is imported: {learner.code()} "
                          f"on line {learner.line}"), ""
    if importing and learner:
        return "import", f"{_step_of(learner.path)}{learner.path} cannot be imported: {summary} (line {learner.line})", ""
    if isinstance(exc, SystemExit) and learner:
        return "error", f"{learner.code()} in {where} ends the program: a step's function should return its result instead", ""
    if isinstance(exc, RecursionError) and learner:
        again = [name for name, n in Counter(s.function for s in spots).most_common() if n >= 20]
        if again:
            who = (f"`{again[0]}()` calls itself" if len(again) == 1 else
                   " and ".join(f"`{name}()`" for name in again[:3]) + " call each other")
            return "error", f"{who} again and again without end ({learner.path}, line {learner.line}: RecursionError)", ""
    if isinstance(exc, MemoryError) and learner:
        return "error", f"out of memory in {where}: MemoryError", ""
    if learner:
        return "error", f"{summary} in {where}", ""
    return "error", summary, ""


def _learner_spots(tb, package_dir: Path | None) -> list[Spot]:
    """The traceback's entries inside the implementation under test, outermost first."""
    if package_dir is None:
        return []
    package_dir = Path(package_dir).resolve()
    spots = []
    while tb is not None:
        code = tb.tb_frame.f_code
        path = Path(code.co_filename)
        if path.is_absolute() and package_dir in path.resolve().parents:
            name = getattr(code, "co_qualname", code.co_name)
            module = name == "<module>"
            spots.append(Spot(_show_path(path), tb.tb_lineno, path.stem if module else name, path, module))
        tb = tb.tb_next
    return spots


def _while_importing(tb) -> bool:
    while tb is not None:
        if "importlib" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _imported_file(exc, tb, package_dir: Path | None) -> Path | None:
    """The file whose import failed: the error's own file name, else the one importlib was reading."""
    if getattr(exc, "filename", None):
        return Path(exc.filename)
    found = None
    while tb is not None:
        path = tb.tb_frame.f_locals.get("source_path") or tb.tb_frame.f_locals.get("path")
        if isinstance(path, str) and path.endswith(".py"):
            found = Path(path)
        tb = tb.tb_next
    return found


def _not_utf8_text(path: Path | None) -> str:
    """"exercises/x.py is not UTF-8 text: it looks like UTF-16; save it as UTF-8", or "" where it is text."""
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        return ""
    why = ""
    nuls = data.count(0)
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or nuls > len(data) * 0.6:
        why = "it looks like UTF-32"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or nuls > len(data) * 0.3:
        why = "it looks like UTF-16"
    elif nuls:
        line = data.count(b"\n", 0, data.index(0)) + 1
        why = f"line {line} holds a NUL byte (character 0)"
    else:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            why = f"byte 0x{data[e.start]:02x} on line {line} is not UTF-8"
    return f"{_show_path(path)} is not UTF-8 text: {why}; save it as UTF-8" if why else ""


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
    group.addoption("--course-stacks", metavar="FILE",
                    help="where Python's stacks go on a crash, or when course.py finds a check stuck")
    group.addoption("--course-trace", nargs=2, metavar=("NODEID", "FILE"),
                    help="run only this check, keeping FILE saying which function of the code under test runs")


def pytest_configure(config):
    path = config.getoption("--course-results")
    if path:
        code = config.getoption("--course-code")
        trace, innermost = config.getoption("--course-trace") or (None, None)
        collector = Collector(Path(code) if code else None, Path(path), _timeout_of(config), child=True,
                              trace=trace, innermost=Path(innermost) if innermost else None)
        config.pluginmanager.register(collector, "course-collector")
    stacks = config.getoption("--course-stacks")
    if stacks:
        # Kept open for the life of the process: faulthandler writes to it from a signal handler, without the
        # interpreter's help, so it works in a segmentation fault and in a loop that never lets Python run.
        config._course_stacks = open(stacks, "w")
        faulthandler.enable(config._course_stacks, all_threads=True)
        faulthandler.register(STACKS_SIGNAL, config._course_stacks, all_threads=True)


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
