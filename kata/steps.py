"""The 11 steps: their order, names, files and hints, read from lessons/course.toml."""

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"


@dataclass(frozen=True)
class Step:
    number: int
    slug: str
    module: str                      # e.g. "step04_attention"
    title: dict                      # {"en": "...", "pl": "..."}
    difficulty: int                  # 1 (gentle) .. 5 (hard)
    minutes: int                     # a beginner's time estimate
    hints: dict = field(default_factory=dict)  # {"en": {"test_name": [hint, ...], "general": [...]}}

    def exercise(self, root: Path = ROOT) -> Path:
        return root / "exercises" / f"{self.module}.py"

    def stub(self, root: Path = ROOT) -> Path:
        return root / "kata" / "stubs" / f"{self.module}.py"

    def solution(self, root: Path = ROOT) -> Path:
        return root / "solutions" / f"{self.module}.py"

    def checks(self, root: Path = ROOT) -> Path:
        return root / "checks" / check_file_name(self.module)

    def lesson(self, lang: str, root: Path = ROOT) -> Path:
        return _localised(root / "lessons", lang, f"step{self.number:02d}.md")

    def quiz(self, lang: str, root: Path = ROOT) -> Path:
        return _localised(root / "lessons", lang, f"step{self.number:02d}.quiz.toml")

    def name(self, lang: str) -> str:
        return self.title.get(lang) or self.title["en"]

    def hints_for(self, check: str, lang: str) -> list[str]:
        """The graded hints for one check (by function name), else the step's general ones."""
        for language in (lang, "en"):
            table = self.hints.get(language, {})
            if check in table:
                return list(table[check])
        for language in (lang, "en"):
            if "general" in self.hints.get(language, {}):
                return list(self.hints[language]["general"])
        return []


def check_file_name(module: str) -> str:
    """The one rule that pairs a step's module with its checks: step04_attention -> test_step04_attention.py."""
    return f"{CHECK_PREFIX}{module}.py"


def module_of_check_file(path: str | Path) -> str:
    """The other way round: checks/test_step04_attention.py -> step04_attention."""
    return Path(path).stem.removeprefix(CHECK_PREFIX)


CHECK_PREFIX = "test_"


def _localised(folder: Path, lang: str, name: str) -> Path:
    """lessons/<lang>/<name>, falling back to English where a translation is missing."""
    path = folder / lang / name
    return path if path.exists() else folder / "en" / name


@lru_cache(maxsize=None)
def all_steps() -> tuple[Step, ...]:
    return load_steps(LESSONS / "course.toml")


def load_steps(path: Path) -> tuple[Step, ...]:
    """The steps a course.toml describes; ValueError when they are not numbered 1, 2, 3, ... in order."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    steps = tuple(
        Step(number=s["number"], slug=s["slug"], module=s["module"], title=s["title"],
             difficulty=s["difficulty"], minutes=s["minutes"], hints=s.get("hints", {}))
        for s in data["step"]
    )
    if [s.number for s in steps] != list(range(1, len(steps) + 1)):
        raise ValueError(f"{path.name}: the steps must be numbered 1 to {len(steps)} in order")
    return steps
