"""Your progress: one small JSON file in the repository root (progress.json, ignored by git).

It is written atomically (a temporary file, then a rename), so an interrupted write never leaves half a file.
Copy it to another clone to carry your progress over. If it is lost or unreadable, course.py rebuilds it from
the checks.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

VERSION = 1
FILENAME = "progress.json"


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

    def hints_seen(self, step: int, check: str) -> int:
        return self.hints.get(str(step), {}).get(check, 0)

    def saw_hint(self, step: int, check: str) -> None:
        seen = self.hints.setdefault(str(step), {})
        seen[check] = seen.get(check, 0) + 1


class ProgressError(Exception):
    """The progress file exists but cannot be read as progress."""


def path_in(root: Path) -> Path:
    return root / FILENAME


def load(root: Path) -> Progress | None:
    """The saved progress, None if there is none yet; ProgressError if the file is corrupt."""
    path = path_in(root)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ProgressError(f"{path.name} cannot be read ({e})") from None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a progress file of this course")
        data.pop("version")
        progress = Progress(**data)
        _validate(progress)
    except (ValueError, TypeError) as e:
        raise ProgressError(f"{path.name} is not valid progress ({e})") from None
    return progress


def _validate(p: Progress) -> None:
    if not (isinstance(p.current, int) and isinstance(p.unlocked, int) and 1 <= p.current <= p.unlocked):
        raise ValueError(f"current step {p.current!r} and unlocked step {p.unlocked!r} do not fit together")
    if not isinstance(p.passed, list) or not all(isinstance(n, int) for n in p.passed):
        raise ValueError("passed must be a list of step numbers")
    if not isinstance(p.quiz, dict) or not isinstance(p.hints, dict) or not isinstance(p.lang, str):
        raise ValueError("quiz and hints must be tables, lang a string")


def save(root: Path, progress: Progress) -> None:
    """Write progress atomically: a crash leaves either the old file or the new one, never half of one."""
    path = path_in(root)
    data = {"version": VERSION, **asdict(progress)}
    data["passed"] = sorted(set(progress.passed))
    fd, tmp = tempfile.mkstemp(prefix=FILENAME + ".tmp", dir=root)
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
