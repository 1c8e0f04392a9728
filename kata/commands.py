"""The learning commands of course.py: where you stand, lessons, checks, hints, demos, quizzes, moving on."""

import contextlib
import copy
import dataclasses
import errno
import filecmp
import itertools
import shutil
import time
from datetime import datetime
from pathlib import Path

from . import checking, lessons, quiz, report, state, steps
from .checking import StepReport
from .errors import UserError
from .i18n import t
from .ui import UI, escape
from .watch import Keys, snapshot, wait_for_change


CourseError = UserError  # the name the learning commands use


BACKUPS = "backups"  # the folder, in the repository root, where reset keeps the learner's files


class Course:
    def __init__(self, ui: UI, root: Path = steps.ROOT, verbose: bool = False):
        self.ui = ui
        self.root = root
        self.verbose = verbose
        self.everything = False  # --all: every check on its own line, passes too
        self.steps = steps.all_steps()
        self._progress: state.Progress | None = None
        self._saved: state.Progress | None = None  # the progress as last read from, or written to, the file

    # -- progress -----------------------------------------------------------------------------------------

    @property
    def progress(self) -> state.Progress:
        if self._progress is None:
            self._progress = self._load_progress()
        return self._progress

    def _load_progress(self) -> state.Progress:
        try:
            progress = state.load(self.root, len(self.steps))
        except state.ProgressError as e:
            progress = self._rebuild()
            self._save_or_warn(progress, f"[yellow]{escape(t('progress_corrupt', why=str(e)))}[/yellow]")
            return progress
        if progress is not None:
            self._saved = copy.deepcopy(progress)
            return progress
        if self._exercises_untouched():
            progress, message = state.Progress(), t("welcome")
        else:
            progress, message = self._rebuild(), f"[yellow]{t('progress_missing')}[/yellow]"
        self._save_or_warn(progress, message)
        return progress

    def _exercises_untouched(self) -> bool:
        return all(filecmp.cmp(s.exercise(self.root), s.stub(self.root), shallow=False)
                   for s in self.steps if s.exercise(self.root).exists() and s.stub(self.root).exists())

    def _rebuild(self) -> state.Progress:
        """Progress from the checks: every step that passes is passed; you stand at the first that fails."""
        reports = checking.run_checks(list(self.steps), "exercises", self.root, until_failure=True)
        current = next((r.step.number for r in reports if not r.passed), len(self.steps))
        progress = state.Progress(current=current, unlocked=current)
        _record_until_failure(progress, reports)
        if all(r.passed for r in reports):
            progress.finish()
        return progress

    def save(self) -> None:
        """Save the progress, merged with whatever another command saved since this one read it; where it cannot
        be saved, one sentence (CourseError) saying why."""
        try:
            self._say_set_aside(self._save(self.progress))
        except OSError as e:
            raise CourseError(t("progress_unsaved", why=_why_unsaved(e, self.root)), 1) from None

    def _save_or_warn(self, progress: state.Progress, message: str) -> None:
        """The first save, when the progress was made rather than read, then `message` saying how it was made.
        Where it cannot be saved, one warning instead, and carry on: a command that only shows (list, lesson)
        still works in a read-only folder, and one that records something stops when it tries."""
        try:
            kept = self._save(progress)
        except OSError as e:
            self.ui.say(f"[yellow]{escape(t('progress_unsaved_warning', why=_why_unsaved(e, self.root)))}[/yellow]")
            return
        self.ui.say(message)
        self._say_set_aside(kept)

    def _say_set_aside(self, kept: str | None) -> None:
        if kept:
            self.ui.say(f"[yellow]{escape(t('progress_set_aside', name=kept))}[/yellow]")

    def _save(self, progress: state.Progress) -> str | None:
        """Read, merge and write under the lock; the name an unreadable file found there was moved to, if any."""
        kept = None
        with state.locked(self.root):  # no other command of the course reads or writes the progress meanwhile
            try:
                theirs = state.load(self.root, len(self.steps))
            except state.ProgressError:
                theirs, kept = None, state.set_aside(self.root)
            if theirs is None:
                merged = progress
            elif self._saved is None:  # this progress was only a stand-in, and another command saved one meanwhile
                merged = theirs
            else:
                merged = state.merge(self._saved, progress, theirs)
            state.save(self.root, merged)
        # subtle: changed in place, so that a command holding `p = self.progress` sees the merged progress too
        for f in dataclasses.fields(progress):
            setattr(progress, f.name, copy.deepcopy(getattr(merged, f.name)))
        self._saved = copy.deepcopy(progress)
        return kept

    def step(self, number: int | None) -> steps.Step:
        if number is None:
            return self.steps[self.progress.current - 1]
        if not 1 <= number <= len(self.steps):
            raise CourseError(t("bad_step", n=number, total=len(self.steps)))
        return self.steps[number - 1]

    def check(self, step: steps.Step, quiet: bool = False) -> StepReport:
        """Run the checks of one step and record their outcome: passed, or no longer passed."""
        if not quiet and self.ui.interactive:
            self.ui.say(f"[dim]{t('checking', n=step.number)}[/dim]")
        result = checking.run_checks([step], "exercises", self.root, tracebacks=self.verbose)[0]
        if self.progress.record(step.number, result.passed):
            self.save()
        return result

    # -- commands -----------------------------------------------------------------------------------------

    def overview(self) -> int:
        """No arguments: the current step, its file, what it is about, and how its checks stand."""
        p = self.progress
        step = self.step(None)
        if p.finished:
            self.ui.say(f"[bold green]{t('finished')}[/bold green]")
            return 0
        self.ui.say(f"[bold]{escape(t('header', n=step.number, total=len(self.steps), title=step.name(t.lang)))}[/bold]")
        self.ui.say(t("your_file", path=f"exercises/{step.module}.py"))
        self.ui.say("")
        lesson = step.lesson(t.lang, self.root)
        if lesson.exists():
            lessons.show_section(self.ui, lessons.first_section(lesson))
            self.ui.say(f"[dim]{t('whole_lesson', n=step.number)}[/dim]\n")
        result = self.check(step)
        if self.verbose:
            report.show(self.ui, result, self.verbose, everything=self.everything)
        else:
            report.summary(self.ui, result)
        self.ui.say("")
        self.ui.say(t("what_next", path=f"exercises/{step.module}.py", n=step.number))
        return 0

    def list(self) -> int:
        p = self.progress
        self.ui.say(f"[bold]{t('list_title')}[/bold]")
        for s in self.steps:
            if s.number in p.passed:
                mark, status = "[green]✓[/green]", t("state_passed")
            elif s.number > p.unlocked:
                mark, status = "[dim]·[/dim]", t("state_locked")
            else:
                mark, status = "[yellow]○[/yellow]", t("state_open")
            if s.number == p.current and not p.finished:
                mark, status = "[bold cyan]▸[/bold cyan]", t("state_current") + (
                    f", {t('state_passed')}" if s.number in p.passed else "")
            extra = ""
            if str(s.number) in p.quiz:
                q = p.quiz[str(s.number)]
                extra = f" · {t('quiz_result', score=q['score'], total=q['total'])}"
            self.ui.say(f" {mark} {s.number:>2}. {escape(s.name(t.lang)):<34} [dim]{status}{extra} · "
                        f"{'★' * s.difficulty}{'☆' * (5 - s.difficulty)} · ~{s.minutes} min[/dim]")
        return 0

    def lesson(self, number: int | None) -> int:
        step = self.step(number)
        path = step.lesson(t.lang, self.root)
        if not path.exists():
            raise CourseError(t("lesson_missing", n=step.number), 1)
        lessons.show_markdown(self.ui, path)
        return 0

    def check_command(self, number: int | None) -> int:
        step = self.step(number)
        result = self.check(step)
        report.show(self.ui, result, self.verbose, everything=self.everything)
        return 0 if result.passed else 1

    def hint(self, number: int | None) -> int:
        step = self.step(number)
        result = self.check(step)
        failing = result.first_failure()
        if result.passed or failing is None:
            self.ui.say(t("hint_all_pass", n=step.number))
            return 0
        self.ui.say(t("hint_failing", title=escape(failing.title), reason=escape(failing.reason)))
        hints = step.hints_for(failing.function, t.lang)
        if not hints:
            self.ui.say(t("hint_none", check=escape(failing.title)))
            return 0
        seen = self.progress.hints_seen(step.number, failing.function)
        index = min(seen, len(hints) - 1)
        self.ui.say(f"\n[bold]{t('hint_header', i=index + 1, total=len(hints), check=escape(failing.title))}[/bold]")
        self.ui.say(f"  {escape(hints[index])}\n")
        if index == len(hints) - 1:
            self.ui.say(f"[dim]{t('hint_last', n=step.number)}[/dim]")
        if seen < len(hints):
            self.progress.saw_hint(step.number, failing.function)
            self.save()
        return 0

    def demo(self, number: int | None) -> int:
        import importlib

        step = self.step(number)
        module = importlib.import_module(f"kata.demos.step{step.number:02d}")
        if step.number in self.progress.passed:
            self.ui.say(f"[dim]{t('demo_yours', n=step.number)}[/dim]\n")
            try:
                module.run("exercises")
                return 0
            except Exception as e:  # the learner's code broke after passing: fall back, say so in one line
                self.ui.say(f"[yellow]{escape(t('demo_failed', error=f'{type(e).__name__}: {e}'))}[/yellow]\n")
        else:
            self.ui.say(f"[dim]{t('demo_reference', n=step.number)}[/dim]\n")
        module.run("solutions")
        return 0

    def quiz(self, number: int | None, answers_text: str | None) -> int:
        step = self.step(number)
        path = step.quiz(t.lang, self.root)
        if not path.exists():
            raise CourseError(t("quiz_missing", n=step.number), 1)
        questions = quiz.load(path)
        answers = None
        if answers_text is not None:
            try:
                answers = quiz.parse_answers(answers_text, questions)
            except ValueError as e:
                raise CourseError(str(e)) from None
        elif not self.ui.interactive:
            for i, q in enumerate(questions, start=1):
                self.ui.plain(f"{i}. {q['text']}")
                for j, choice in enumerate(q["choices"], start=1):
                    self.ui.plain(f"   {j}) {choice}")
            example = ",".join("1" for _ in questions)
            self.ui.plain("\n" + t("quiz_no_tty", n=step.number, example=example))
            return 0
        score = quiz.run(self.ui, step.number, questions, answers)
        self.progress.scored(step.number, score, len(questions))
        self.save()
        return 0

    def next(self) -> int:
        p = self.progress
        step = self.step(None)
        if step.number == len(self.steps):
            return self._finish()
        result = self.check(step)
        if not result.passed:
            report.show(self.ui, result, self.verbose, everything=self.everything)
            passed, total = result.counts
            self.ui.say(f"\n{t('next_not_yet', n=step.number, passed=passed, total=total)}")
            return 1
        p.advance(step.number)
        self.save()
        nxt = self.step(None)
        self.ui.say(f"[green]{escape(t('next_unlocked', n=step.number, m=nxt.number, title=nxt.name(t.lang)))}[/green]")
        self.ui.say(t("your_file", path=f"exercises/{nxt.module}.py"))
        self.ui.say(f"[dim]{t('whole_lesson', n=nxt.number)}[/dim]")
        return 0

    def _finish(self) -> int:
        """After the last step: check every step again and send the learner to the first that fails."""
        p = self.progress
        self.ui.say(t("next_recheck"))
        reports = checking.run_checks(list(self.steps), "exercises", self.root, until_failure=True)
        _record_until_failure(p, reports)
        failing = next((r for r in reports if not r.passed), None)
        if failing is None:
            p.finish()
            self.save()
            self.ui.say(f"[bold green]{t('finished')}[/bold green]")
            return 0
        failing = self.check(failing.step, quiet=True)  # the run stopped at its first failure: show it all
        report.show(self.ui, failing, self.verbose, everything=self.everything)
        if failing.step.number == p.current:  # the last step itself is not done yet
            passed, total = failing.counts
            self.ui.say(f"\n{t('next_not_yet', n=failing.step.number, passed=passed, total=total)}")
        else:
            self.ui.say(f"\n{t('next_back_to', n=failing.step.number)}")
        p.go_to(failing.step.number)
        self.save()
        return 1

    def goto(self, number: int) -> int:
        step = self.step(number)
        if step.number > self.progress.unlocked:
            raise CourseError(t("goto_locked", n=step.number, unlocked=self.progress.unlocked), 1)
        self.progress.go_to(step.number)
        self.save()
        self.ui.say(t("goto_done", n=step.number, title=escape(step.name(t.lang))))
        self.ui.say(t("your_file", path=f"exercises/{step.module}.py"))
        return 0

    def solution(self, number: int, peek: bool) -> int:
        step = self.step(number)
        if step.number not in self.progress.passed:
            if not peek:
                raise CourseError(t("solution_locked", n=step.number), 1)
            self.ui.say(f"[yellow]{t('solution_peek', n=step.number)}[/yellow]\n")
        lessons.show_code(self.ui, step.solution(self.root))
        return 0

    def reset(self, number: int | None, everything: bool, yes: bool) -> int:
        targets = list(self.steps) if everything else [self.step(number)]
        changed = [s for s in targets if not filecmp.cmp(s.exercise(self.root), s.stub(self.root), shallow=False)] \
            if all(s.exercise(self.root).exists() for s in targets) else targets
        if not everything and not changed:
            self.ui.say(t("reset_unchanged", path=f"exercises/{targets[0].module}.py"))
            return 0
        folder = self.root / BACKUPS
        if folder.exists() and not folder.is_dir():
            raise CourseError(_backups_not_a_folder(), 1)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        if everything:
            question = t("reset_all_confirm")
        else:
            s = changed[0]
            question = t("reset_confirm", path=f"exercises/{s.module}.py",
                         backup=next(_backup_names(folder, s.module, stamp)).relative_to(self.root).as_posix())
        if not yes:
            if not self.ui.interactive:
                raise CourseError(t("reset_needs_yes"))
            if not self.ui.confirm(question):
                self.ui.say(t("reset_cancelled"))
                return 1
        # Every backup is made before any file is replaced: a backup that fails leaves every file as it was.
        backups = {s.number: _keep_backup(s.exercise(self.root), folder, s.module, stamp)
                   for s in changed if s.exercise(self.root).exists()}
        for s in changed:
            _restore_stub(s, self.root, backups.get(s.number))
        p = self.progress
        if everything:
            self._progress = state.Progress(lang=p.lang)
            self.save()
            self.ui.say(t("reset_all_done", count=len(changed)))
        else:
            s = changed[0]
            p.record(s.number, False)
            self.save()
            if s.number in backups:
                self.ui.say(t("reset_done", n=s.number, backup=backups[s.number].relative_to(self.root).as_posix()))
            else:  # there was no file to keep
                self.ui.say(t("reset_all_done", count=1))
        return 0

    def watch(self, number: int | None) -> int:
        step = self.step(number)
        keys = Keys(self.ui.interactive)
        folder = self.root / "exercises"
        self.ui.say(t("watch_start" if self.ui.interactive else "watch_start_plain", n=step.number))
        with keys.raw():
            before = snapshot(folder)
            while True:
                self.ui.clear()
                self.ui.say(f"[dim]{time.strftime('%H:%M:%S')}[/dim]")
                result = self.check(step, quiet=True)
                report.show(self.ui, result, self.verbose, everything=self.everything)
                if result.passed:
                    self.ui.say(f"\n[green]{t('watch_passed', n=step.number)}[/green]")
                if self.ui.interactive:
                    self.ui.say(f"[dim]{t('watch_waiting')}[/dim]")
                before = wait_for_change(folder, before, keys)
                if before is None:
                    return 0


def _record_until_failure(progress: state.Progress, reports: list[StepReport]) -> None:
    """Record a run that stopped at its first failure: the steps after that one did not run, so they keep
    the outcome of their own last check."""
    for r in reports:
        progress.record(r.step.number, r.passed)
        if not r.passed:
            break


def _backups_not_a_folder() -> str:
    if t.lang == "pl":
        return (f"{BACKUPS} jest plikiem, a nie folderem, więc nie ma gdzie zachować twojego pliku: "
                f"przenieś lub zmień nazwę pliku {BACKUPS} i spróbuj ponownie (nic nie zostało zmienione).")
    return (f"{BACKUPS} is a file, not a folder, so there is nowhere to keep your file: move or rename "
            f"{BACKUPS} and reset again (nothing was changed).")


def _backup_names(folder: Path, module: str, stamp: str):
    """Free names for a backup: module.STAMP.py, then module.STAMP-2.py, module.STAMP-3.py..."""
    for i in itertools.count(1):
        path = folder / (f"{module}.{stamp}.py" if i == 1 else f"{module}.{stamp}-{i}.py")
        if not path.exists():
            yield path


def _keep_backup(source: Path, folder: Path, module: str, stamp: str) -> Path:
    """Copy `source` into a new file in `folder` and return it; an existing backup is never overwritten: each
    name is created with an exclusive open, so a name taken meanwhile (another reset) moves on to the next."""
    try:
        folder.mkdir(exist_ok=True)
        for path in _backup_names(folder, module, stamp):
            with open(source, "rb") as src:
                try:
                    out = open(path, "xb")
                except FileExistsError:
                    continue
                try:
                    with out:
                        shutil.copyfileobj(src, out)
                    shutil.copystat(source, path)
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
            return path
    except FileExistsError:  # backups was made a file since we looked
        raise CourseError(_backups_not_a_folder(), 1) from None
    except OSError as e:
        raise CourseError(t("backup_failed", folder=BACKUPS, why=e.strerror or e), 1) from None
    raise AssertionError("there is always a next free name")


def _restore_stub(step: steps.Step, root: Path, backup: Path | None) -> None:
    """Put the original stub in place of the learner's file (kept in `backup`), in one rename."""
    target = step.exercise(root)
    tmp = target.with_suffix(".py.tmp")
    try:
        shutil.copyfile(step.stub(root), tmp)
        tmp.replace(target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = t("restore_kept", backup=backup.relative_to(root).as_posix()) if backup else ""
        raise CourseError(t("restore_failed", path=target.relative_to(root).as_posix(), why=e.strerror or e,
                            kept=kept), 1) from None


def _why_unsaved(e: OSError, root: Path) -> str:
    """Why the progress cannot be saved, with what to do about it: "progress.json is a folder, ..."."""
    name = Path(e.filename).name if e.filename else state.FILENAME
    if isinstance(e, IsADirectoryError):
        return t("unsaved_folder", name=name)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = Path(e.filename2 or e.filename or root)  # a rename names its target second
        if where.name == state.LOCKNAME or where.name.startswith(state.FILENAME + ".tmp"):
            where = where.parent  # the course's own helper files: it is their folder that refuses
        return t("unsaved_denied", path=where, why=e.strerror)
    return e.strerror or str(e)
