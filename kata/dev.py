"""`python course.py dev check`: the maintainer's check that every step is whole.

For every step in lessons/course.toml it looks for the stub (and its pristine copy), the reference, the checks,
the lesson and the quiz in every language, the demo, graded hints for every check in every language and none
for a check that does not exist, and at least two mutants. It reads files only: running the checks is the test
suite's job (tests/test_selfcheck.py). Nothing here knows how many steps there are: course.toml says.
"""

import ast
import filecmp
import subprocess
import sys
from pathlib import Path

from . import steps
from .i18n import LANGUAGES
from .ui import escape

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MIN_MUTANTS = 2


def check_names(path: Path) -> list[str]:
    """The checks a file defines: its test_ functions, also inside Test classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    names += [m.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")
              for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return [n for n in names if n.startswith("test_")]


def problems(root: Path = steps.ROOT) -> list[str]:
    """Everything missing or inconsistent, one sentence each; empty when the course is whole."""
    try:
        every = steps.load_steps(root / "lessons" / "course.toml")
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as e:
        return [f"lessons/course.toml cannot be read: {e}"]
    found: list[str] = []
    for step in every:
        found += [f"step {step.number}: {p}" for p in _step_problems(step, root)]
    found += _strays(every, root)
    return found


def _step_problems(step: steps.Step, root: Path) -> list[str]:
    out = []
    nn = f"{step.number:02d}"
    files = {"the stub": step.exercise(root), "the pristine stub": step.stub(root), "the reference": step.solution(root),
             "the checks": step.checks(root), "the demo": root / "kata" / "demos" / f"step{nn}.py",
             "the mutants": root / "tests" / "mutants" / f"step{nn}.toml"}
    for lang in LANGUAGES:
        files[f"the lesson ({lang})"] = root / "lessons" / lang / f"step{nn}.md"
        files[f"the quiz ({lang})"] = root / "lessons" / lang / f"step{nn}.quiz.toml"
    for what, path in files.items():
        if not path.is_file():
            out.append(f"{what} is missing: {path.relative_to(root).as_posix()}")
    for lang in LANGUAGES:
        if not step.title.get(lang):
            out.append(f"no title in {lang} in lessons/course.toml")
    if step.exercise(root).is_file() and step.stub(root).is_file():
        out += _stub_problems(step, root)
    if step.checks(root).is_file():
        try:
            names = check_names(step.checks(root))
        except SyntaxError as e:
            return out + [f"{step.checks(root).name} does not parse (line {e.lineno})"]
        if not names:
            out.append(f"{step.checks(root).name} defines no checks")
        for lang in LANGUAGES:
            table = step.hints.get(lang, {})
            missing = [n for n in names if not table.get(n)]
            if missing:
                out.append(f"no hints in {lang} for {', '.join(missing)}")
            unknown = [n for n in table if n != "general" and n not in names]
            if unknown:
                out.append(f"hints in {lang} for checks that do not exist: {', '.join(unknown)}")
    for lang in LANGUAGES:
        quiz = root / "lessons" / lang / f"step{nn}.quiz.toml"
        if quiz.is_file():
            out += [f"the quiz ({lang}): {p}" for p in _quiz_problems(quiz)]
    mutants = root / "tests" / "mutants" / f"step{nn}.toml"
    if mutants.is_file():
        out += _mutant_problems(mutants, step.solution(root))
    demo = root / "kata" / "demos" / f"step{nn}.py"
    if demo.is_file() and "def run(" not in demo.read_text(encoding="utf-8"):
        out.append(f"{demo.relative_to(root).as_posix()} has no run(pkg) function")
    return out


def _stub_problems(step: steps.Step, root: Path) -> list[str]:
    stub = step.stub(root)
    text = stub.read_text(encoding="utf-8")
    out = []
    if "TODO" not in text or "raise NotImplementedError" not in text:
        out.append(f"kata/stubs/{stub.name} needs a TODO and `raise NotImplementedError` where the learner writes")
    if not filecmp.cmp(step.exercise(root), stub, shallow=False) and _committed(root, step.exercise(root)) != text:
        out.append(f"exercises/{stub.name} and kata/stubs/{stub.name} differ (the stub the learner gets must be "
                   f"the pristine one)")
    return out


def _committed(root: Path, path: Path) -> str | None:
    """The last committed version of a file, or None outside a git checkout: a learner's own edits in
    exercises/ are theirs, and only the committed copy must be the stub."""
    try:
        out = subprocess.run(["git", "show", f"HEAD:{path.relative_to(root).as_posix()}"], cwd=root,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _quiz_problems(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            questions = tomllib.load(f).get("question", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        return [f"cannot be read ({e})"]
    out = [] if questions else ["has no questions"]
    for i, q in enumerate(questions, start=1):
        if not all(k in q for k in ("text", "choices", "answer", "why")):
            out.append(f"question {i} needs text, choices, answer and why")
        elif not (isinstance(q["answer"], int) and 1 <= q["answer"] <= len(q["choices"])):
            out.append(f"question {i}: answer {q['answer']!r} is not one of its {len(q['choices'])} choices")
    return out


def _mutant_problems(path: Path, solution: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            mutants = tomllib.load(f).get("mutant", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        return [f"{path.name} cannot be read ({e})"]
    out = []
    if len(mutants) < MIN_MUTANTS:
        out.append(f"{len(mutants)} mutant{'s' if len(mutants) != 1 else ''} in {path.name}; a step needs at least "
                   f"{MIN_MUTANTS}")
    reference = solution.read_text(encoding="utf-8") if solution.is_file() else ""
    for m in mutants:
        times = reference.count(m.get("find", "")) if m.get("find") else 0
        if times != 1:
            out.append(f"mutant {m.get('name', '?')!r}: its `find` occurs {times} times in {solution.name}, not once")
    return out


def _strays(every, root: Path) -> list[str]:
    """Step files that no step of course.toml owns (a step renamed or removed halfway)."""
    modules = {s.module for s in every}
    out = []
    for folder in ("exercises", "solutions", "kata/stubs"):
        for path in sorted((root / folder).glob("step*.py")):
            if path.stem not in modules:
                out.append(f"{folder}/{path.name} belongs to no step in lessons/course.toml")
    for path in sorted((root / "checks").glob(steps.check_file_name("step*"))):
        if steps.module_of_check_file(path) not in modules:
            out.append(f"checks/{path.name} belongs to no step in lessons/course.toml")
    return out


def run(ui, root: Path = steps.ROOT) -> int:
    found = problems(root)
    every = steps.load_steps(root / "lessons" / "course.toml") if not found or "course.toml" not in found[0] else []
    if not found:
        ui.say(f"[green]The course is whole: {len(every)} steps, each with its stub, reference, checks, lessons, "
               f"quizzes, demo, hints and mutants.[/green]")
        return 0
    for problem in found:
        ui.say(f"  [red]✗[/red] {escape(problem)}")
    ui.say(f"\n{len(found)} problem{'s' if len(found) != 1 else ''}: see CONTRIBUTING.md for what a step needs.")
    return 1
