"""Showing check results: one line per check, passed or failed, with one line of why."""

from .checking import StepReport
from .i18n import t
from .ui import UI, escape

MARKS = {"passed": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[yellow]-[/yellow]",
         "not run": "[yellow]?[/yellow]"}


SHOWN_IN_FULL = 4  # failing checks shown with their reason before the rest are counted (--all shows them)


def show(ui: UI, report: StepReport, verbose: bool = False, everything: bool = False) -> None:
    """The step's results on one screen: passes counted, checks waiting for an unwritten function grouped
    under it, checks not run counted under why, the first few other failures in full. `everything` (--all,
    and -v) lists every check."""
    step = report.step
    ui.say(f"[bold]{t('step_n', n=step.number)} · {escape(step.name(t.lang))}[/bold] · "
           f"exercises/{step.module}.py")
    if report.problem:
        ui.say(f"  [red]✗[/red] {escape(report.problem)}")
        return
    everything = everything or verbose
    passed, total = report.counts
    if not everything and 0 < passed < total:
        ui.say(f"  [green]✓[/green] {t('n_pass', passed=passed)}")
    shown_details: set[str] = set()
    unwritten: dict[str, int] = {}
    not_run: set[str] = set()
    hidden = 0
    in_full = 0
    for r in report.results:
        if not everything:
            if r.outcome == "passed":
                continue
            if r.outcome == "not run":  # the checks stopped before these: one line says why, once
                if r.reason not in not_run:
                    not_run.add(r.reason)
                    count = sum(1 for o in report.results if o.outcome == "not run" and o.reason == r.reason)
                    why = r.reason.removeprefix("not run: ")
                    ui.say(f"  {MARKS['not run']} {t('not_run', count=count)} [dim]—[/dim] {escape(why)}")
                continue
            if r.kind == "todo" and r.reason:
                if r.reason not in unwritten:
                    unwritten[r.reason] = sum(1 for o in report.results if o.kind == "todo" and o.reason == r.reason)
                    what = r.reason.removesuffix(f" in exercises/{step.module}.py")  # the file is in the title
                    ui.say(f"  {MARKS['failed']} {escape(what)} [dim]({t('waiting', count=unwritten[r.reason])})[/dim]")
                continue
            if in_full >= SHOWN_IN_FULL:
                hidden += 1
                continue
            in_full += 1
        line = f"  {MARKS[r.outcome]} {escape(r.title)}"
        if r.outcome != "passed" and r.reason:
            line += f" [dim]—[/dim] {escape(r.reason)}"
        ui.say(line)
        # A syntax error breaks every check the same way: show the code line and caret once.
        if r.detail and r.detail not in shown_details:
            shown_details.add(r.detail)
            ui.plain(r.detail)
        if verbose and r.traceback:
            ui.plain(_indent(r.traceback))
    if hidden:
        ui.say(f"  [dim]{t('more_fail', hidden=hidden, n=step.number)}[/dim]")
    if report.passed:
        ui.say(f"  [green]{t('all_pass', total=total)}[/green]")
    else:
        ui.say(f"  {t('some_pass', passed=passed, total=total)}")
        ui.say(f"  [dim]{t('hint_pointer', n=step.number)}[/dim]")
        if not verbose and any(r.traceback for r in report.results if r.outcome == "failed" and r.kind != "todo"):
            ui.say(f"  [dim]{t('verbose_pointer', n=step.number)}[/dim]")


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.rstrip().splitlines())


def summary(ui: UI, report: StepReport) -> None:
    """Two lines for the start page: how many checks pass, and the first one to work on."""
    step = report.step
    if report.problem:
        ui.say(f"[red]✗[/red] {escape(report.problem)}")
        return
    passed, total = report.counts
    if report.passed:
        ui.say(f"[green]✓ {t('all_pass', total=total)}[/green]")
        return
    ui.say(t("some_pass", passed=passed, total=total))
    first = report.first_failure()
    ui.say(f"{t('first_to_fix')} [red]✗[/red] {escape(first.title)} [dim]—[/dim] {escape(first.reason)}")
    if first.detail:
        ui.plain(first.detail)
    ui.say(f"[dim]{t('every_check', n=step.number)}[/dim]")
