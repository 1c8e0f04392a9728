"""Your progress: one small JSON file in the repository root (progress.json, ignored by git).

It is written atomically (a temporary file, then a rename), so an interrupted write never leaves half a file.
Two commands at once (a quiz in one terminal, a check in another) take turns through a lock file,
progress.json.lock, and each merges its change into what the other saved. Copy progress.json to another clone
to carry your progress over. If it is lost or unreadable, course.py rebuilds it from the checks, and an
unreadable one is first moved aside to progress.json.unreadable, so that nothing in it is lost.
"""

import copy
import errno
import json
import os
import reprlib
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .i18n import LANGUAGES

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

VERSION = 1
FILENAME = "progress.json"
LOCKNAME = FILENAME + ".lock"
ASIDE = FILENAME + ".unreadable"
MAX_BYTES = 1 << 20   # a real progress file takes a few kilobytes: a bigger one is not ours, and is not read
MAX_COUNT = 1000      # the most questions in a quiz, or hints seen for one check, that a progress file may hold


@dataclass
class Progress:
    current: int = 1                                   # the step you are working on
    unlocked: int = 1                                  # the furthest step you may go to
    passed: list[int] = field(default_factory=list)    # steps whose checks passed the last time they ran
    quiz: dict[str, dict] = field(default_factory=dict)    # "4" -> {"score": 3, "total": 5}
    hints: dict[str, dict] = field(default_factory=dict)   # "4" -> {"test_attention_is_causal": 2}
    lang: str = ""                                     # chosen with --lang; "" follows the system's locale
    finished: bool = False                             # every step passed at the end of the course

    def record(self, step: int, passed: bool) -> bool:
        """The outcome of the latest run of `step`'s checks; True when that changes the progress."""
        before = (sorted(set(self.passed)), self.finished)
        if passed:
            if step not in self.passed:
                self.passed.append(step)
        else:
            self.passed = [n for n in self.passed if n != step]
            self.finished = False
        self.passed.sort()
        return (self.passed, self.finished) != before

    def advance(self, step: int) -> None:
        """`step` passes: stand at the one after it, which is unlocked from now on."""
        self.record(step, True)
        self.current = step + 1
        self.unlocked = max(self.unlocked, self.current)
        self.finished = False

    def go_to(self, step: int) -> None:
        """Stand at `step` (an unlocked one), to work on it again."""
        if not 1 <= step <= self.unlocked:
            raise ValueError(f"step {step} is not unlocked (unlocked: 1 to {self.unlocked})")
        self.current = step
        self.finished = False

    def finish(self) -> None:
        """Every step passed its checks at the end of the course."""
        self.finished = True

    def scored(self, step: int, score: int, total: int) -> None:
        """The result of the latest quiz on `step`."""
        self.quiz[str(step)] = {"score": score, "total": total}

    def speak(self, lang: str) -> None:
        """The language chosen with --lang, kept for the next commands."""
        self.lang = lang

    def hints_seen(self, step: int, check: str) -> int:
        return self.hints.get(str(step), {}).get(check, 0)

    def saw_hint(self, step: int, check: str) -> None:
        seen = self.hints.setdefault(str(step), {})
        seen[check] = seen.get(check, 0) + 1


class ProgressError(Exception):
    """The progress file exists but cannot be read as progress: the message is one sentence saying why."""


def path_in(root: Path) -> Path:
    return root / FILENAME


def _number_of_steps() -> int:
    from . import steps

    return len(steps.all_steps())


# -- reading ------------------------------------------------------------------------------------------------

def load(root: Path, n_steps: int | None = None) -> Progress | None:
    """The saved progress, None if there is none yet; ProgressError, and nothing else, if it cannot be used."""
    n_steps = _number_of_steps() if n_steps is None else n_steps
    path = path_in(root)
    try:
        info = path.stat()  # subtle: follows a symbolic link, so a linked progress file is read where it lies
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ProgressError(f"{FILENAME} cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ProgressError(f"{FILENAME} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device: reading it could wait, or never end
        raise ProgressError(f"{FILENAME} is not a plain file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ProgressError(f"{FILENAME} cannot be read ({e.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise ProgressError(f"{FILENAME} holds {max(info.st_size, len(raw)):,} bytes, far more than any progress")
    try:
        text = raw.decode("utf-8-sig")  # an editor may have put a byte-order mark in front
    except UnicodeDecodeError:
        raise ProgressError(f"{FILENAME} is not UTF-8 text") from None
    if not text.strip():
        raise ProgressError(f"{FILENAME} is empty")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_short_int)
    except RecursionError:
        raise ProgressError(f"{FILENAME} is nested too deeply to be progress") from None
    except json.JSONDecodeError as e:
        raise ProgressError(f"{FILENAME} is not valid JSON ({e.msg}, line {e.lineno})") from None
    except ValueError as e:
        raise ProgressError(f"{FILENAME} is not valid progress: {e}") from None
    try:
        return from_data(data, n_steps)
    except ValueError as e:
        raise ProgressError(f"{FILENAME} is not valid progress: {e}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number progress can hold")


def _short_int(digits: str) -> int:
    if len(digits) > 30:  # subtle: Python refuses to read an int of more than 4300 digits, with a long advice
        raise ValueError(f"it holds a number of {len(digits):,} digits")
    return int(digits)


def from_data(data, n_steps: int) -> Progress:
    """Progress from the parsed JSON of a progress file; ValueError, in one clause, for anything else."""
    if not isinstance(data, dict):
        raise ValueError("it is not a table of entries")
    version = data.get("version")
    if type(version) is int and version > VERSION:
        raise ValueError(f"it was written by a newer version of the course (format {version}; this one reads "
                         f"format {VERSION})")
    if type(version) is not int or version != VERSION:  # subtle: True == 1 in Python, so compare the type too
        raise ValueError(f"its version is {_show(version)}, not {VERSION}")
    known = {f.name for f in fields(Progress)}
    unknown = sorted(_show(k) for k in data if k != "version" and k not in known)
    if unknown:
        raise ValueError(f"it has entries this course does not know ({', '.join(unknown[:3])})")
    progress = Progress(**{k: v for k, v in data.items() if k != "version"})
    _validate(progress, n_steps)
    return progress


def _validate(p: Progress, n_steps: int) -> None:
    if not _is_count(p.current, 1, n_steps):
        raise ValueError(f"the current step {_show(p.current)} is not a step of this course (1 to {n_steps})")
    if not _is_count(p.unlocked, p.current, n_steps):
        raise ValueError(f"the unlocked step {_show(p.unlocked)} is not from the current step ({p.current}) "
                         f"to {n_steps}")
    if type(p.passed) is not list or not all(_is_count(n, 1, n_steps) for n in p.passed):
        raise ValueError(f"passed is {_show(p.passed)}, not a list of step numbers from 1 to {n_steps}")
    for name, table in (("quiz", p.quiz), ("hints", p.hints)):
        if type(table) is not dict:
            raise ValueError(f"{name} is {_show(table)}, not a table")
        bad = next((k for k in table if not _is_step_key(k, n_steps)), None)
        if bad is not None:
            raise ValueError(f"{name} has an entry for {_show(bad)}, which is not a step number from 1 to {n_steps}")
    for step, result in p.quiz.items():
        if not (type(result) is dict and result.keys() == {"score", "total"}
                and _is_count(result["total"], 1, MAX_COUNT) and _is_count(result["score"], 0, result["total"])):
            raise ValueError(f"the quiz result of step {step} is {_show(result)}, not a score out of a total")
    for step, seen in p.hints.items():
        if type(seen) is not dict or not all(type(k) is str and _is_count(n, 0, MAX_COUNT) for k, n in seen.items()):
            raise ValueError(f"the hints seen in step {step} are {_show(seen)}, not a count for each check")
    if p.lang not in ("", *LANGUAGES):
        raise ValueError(f"the language {_show(p.lang)} is not one of {', '.join(LANGUAGES)}")
    if type(p.finished) is not bool:
        raise ValueError(f"finished is {_show(p.finished)}, not true or false")


def _is_count(x, low: int, high: int) -> bool:
    return type(x) is int and low <= x <= high  # subtle: True and False are ints too, and are refused


def _is_step_key(key, n_steps: int) -> bool:
    """"4" is a step's key; "04", "４", "x" and 4 are not."""
    return type(key) is str and key.isascii() and key.isdigit() and str(int(key)) == key and 1 <= int(key) <= n_steps


_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlong, _repr.maxlevel = 30, 30, 30, 2


def _show(value) -> str:
    """A short picture of a value found in the file: long strings, huge numbers and deep lists cut short."""
    return _repr.repr(value)


# -- writing ------------------------------------------------------------------------------------------------

@contextmanager
def locked(root: Path):
    """Hold progress.json.lock while a command reads, changes and saves the progress: a second command waits,
    then reads what the first one saved. OSError when the lock file cannot be made (a read-only folder)."""
    fd = os.open(root / LOCKNAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)  # closing the file lets the lock go


def _lock(fd: int) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:  # a file system without locks: go on unlocked, as before there were locks
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        return
    try:
        import msvcrt
    except ImportError:  # neither POSIX nor Windows: go on unlocked
        return
    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            return
        except OSError:  # LK_LOCK gives up after ten seconds of trying: keep waiting
            continue


def merge(base: Progress, mine: Progress, theirs: Progress) -> Progress:
    """Apply what this command changed since it read `base` to `theirs`, the progress saved meanwhile by
    another command. base quiz {}, mine {"1": a}, theirs {"2": b} -> {"1": a, "2": b}; passed the same way:
    a step this command passed or failed is changed, the others stay as `theirs` has them."""
    merged = copy.deepcopy(theirs)
    for name in ("current", "unlocked", "lang", "finished"):
        if getattr(mine, name) != getattr(base, name):
            setattr(merged, name, getattr(mine, name))
    added, removed = set(mine.passed) - set(base.passed), set(base.passed) - set(mine.passed)
    merged.passed = sorted((set(theirs.passed) | added) - removed)
    merged.quiz = _merge_table(base.quiz, mine.quiz, theirs.quiz)
    merged.hints = {}
    for step in base.hints.keys() | mine.hints.keys() | theirs.hints.keys():
        seen = _merge_table(base.hints.get(step, {}), mine.hints.get(step, {}), theirs.hints.get(step, {}))
        if seen:
            merged.hints[step] = seen
    merged.unlocked = max(merged.unlocked, merged.current)
    return merged


def _merge_table(base: dict, mine: dict, theirs: dict) -> dict:
    merged = copy.deepcopy(theirs)
    for key in base.keys() | mine.keys():
        if mine.get(key) != base.get(key):
            if key in mine:
                merged[key] = copy.deepcopy(mine[key])
            else:
                merged.pop(key, None)
    return merged


def set_aside(root: Path) -> str | None:
    """Move an unreadable progress file to a name of its own (progress.json.unreadable, then -2, -3...), so that
    a rebuilt one does not replace it; the name it got, or None where there was nothing worth keeping (no file,
    an empty one) or something that is not the course's to move (a folder)."""
    path = path_in(root)
    try:
        info = path.lstat()
    except OSError:
        return None
    if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_size == 0):
        return None
    for i in range(1, MAX_COUNT):
        name = ASIDE if i == 1 else f"{ASIDE}-{i}"
        if not os.path.lexists(root / name):
            os.rename(path, root / name)
            return name
    return None


def save(root: Path, progress: Progress) -> None:
    """Write progress atomically: a crash leaves either the old file or the new one, never half of one.
    OSError when it cannot be written; a folder called progress.json is never touched."""
    path = Path(os.path.realpath(path_in(root)))  # a symbolic link stays: the file it points to is replaced
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path_in(root)))
    data = {"version": VERSION, **asdict(progress)}
    data["passed"] = sorted(set(progress.passed))
    fd, tmp = tempfile.mkstemp(prefix=FILENAME + ".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
