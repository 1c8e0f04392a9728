"""`python course.py` in a terminal: the course's home, one screen that checks your step again on every save.

It shows the current step, how many steps pass, and the first failing checks with the pointer to a hint. Single
keys open the lesson, the hint, the demo, the quiz, the next step and the list of steps; q leaves. Without a
terminal (a pipe, CI) course.py prints the plain start page instead (Course.overview).
"""

from . import report
from .errors import UserError
from .i18n import t
from .ui import escape
from .watch import Keys, snapshot, wait_for_change_or_key

# key -> what it opens; each is a method of Course that takes the step number
ACTIONS = {"l": "lesson", "h": "hint", "d": "demo", "z": "quiz", "n": "next", "s": "list"}
QUIT = ("q", "\x1b", "")  # q, Esc, or the end of the input


def run(course) -> int:
    keys = Keys(course.ui.interactive)
    folder = course.root / "exercises"
    last = None  # (step number, files) -> the result shown, so that coming back from the lesson is instant
    with keys.raw():
        files = snapshot(folder)
        while True:
            step = course.step(None)
            if last is None or last[0] != (step.number, files):
                last = ((step.number, files), _check(course, step))
            _draw(course, step, last[1])
            while True:
                files, key = wait_for_change_or_key(folder, files, keys)
                if key is None or key == "c":  # a save, or c: check again
                    last = None if key == "c" else last
                    break
                if key in QUIT:
                    course.ui.say("")
                    return 0
                if key in ACTIONS:
                    if not _open(course, keys, ACTIONS[key], step.number):
                        return 0
                    files = snapshot(folder)
                    break
                course.ui.say(f"[yellow]{escape(t('home_unknown_key', pressed=key))}[/yellow]")


def _check(course, step):
    course.ui.clear()
    course.ui.say(f"[dim]{t('checking', n=step.number)}[/dim]")
    return course.check(step, quiet=True)


def _draw(course, step, result) -> None:
    ui = course.ui
    ui.clear()
    passed = len(course.progress.passed)
    total = len(course.steps)
    bar = "".join("■" if s.number in course.progress.passed else "□" for s in course.steps)
    ui.say(f"[bold]{escape(t('header', n=step.number, total=total, title=step.name(t.lang)))}[/bold]")
    ui.say(f"[dim]{bar} {t('home_progress', passed=passed, total=total)}[/dim]\n")
    report.show(ui, result)
    if result.passed:
        ui.say(f"\n[green]{t('home_passed', n=step.number)}[/green]")
    ui.say(f"\n{t('home_saves', path=f'exercises/{step.module}.py')}")
    ui.say(f"[bold]{t('home_keys')}[/bold]")


def _open(course, keys: Keys, action: str, number: int) -> bool:
    """Run one command on a clean screen, with lines and Enter working as usual, then wait for a key; False
    when the input ended instead."""
    course.ui.clear()
    with keys.cooked():
        try:
            if action == "quiz":
                course.quiz(number, None)
            elif action in ("next", "list"):
                getattr(course, action)()
            else:
                getattr(course, action)(number)
        except UserError as e:
            course.ui.say(f"[red]{escape(str(e))}[/red]")
        except (EOFError, KeyboardInterrupt):  # Ctrl+D or Ctrl+C ends the quiz or the demo, not the course
            course.ui.say(f"\n{t('interrupted')}")
    course.ui.say(f"\n[dim]{t('home_back')}[/dim]")
    return keys.read(None) != ""
