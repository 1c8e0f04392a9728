"""`python course.py experiment NAME`: run one of the lab's experiments and show what it shows.

    python course.py experiment --list            every experiment, and the effect it should show
    python course.py experiment width             d_model 8 vs 64 on the bundled corpus
    python course.py experiment heads my.txt      on your own text
    python course.py experiment norm --quick      a few steps of a tiny model: seconds, to try it out

Each experiment trains its variants with the same seed, text and number of steps (lab.py), then prints one
table (parameters, time, losses, bits per character, a sample), overlays the curves in the terminal and in a
PNG (--out, default lab/), says what to notice and whether the expected effect showed on this run.
"""

import argparse
import math
import time
from pathlib import Path

from .. import charts
from ..errors import UserError
from ..loader import add_code_choice, learner_code, load_steps, parse_seed, read_text, whose_code
from ..ui import UI, escape

OUT = "lab"  # where the pictures go by default: a folder of the course's own, ignored by git


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="the experiment (--list shows them)")
    parser.add_argument("file", nargs="?", metavar="FILE", help="a UTF-8 text to train on (default: the bundled corpus)")
    parser.add_argument("--list", action="store_true", dest="list_them", help="list the experiments")
    parser.add_argument("--quick", action="store_true", help="a tiny model for a few steps: seconds, not minutes")
    parser.add_argument("--budget", type=int, default=None, help="optimisation steps per variant (default 300)")
    parser.add_argument("--seed", default="1337", help="the seed every variant shares (default 1337)")
    parser.add_argument("--out", default=OUT, help=f"the folder for the picture (default {OUT}/)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: for models this small, the fastest on a busy laptop)")
    add_code_choice(parser, "run the experiment")


def run(args, ui: UI, lang: str) -> int:
    from .table import BY_NAME, EXPERIMENTS

    if args.list_them or args.name is None:
        _list(ui, EXPERIMENTS, lang)
        return 0 if args.list_them else 2
    experiment = BY_NAME.get(args.name)
    if experiment is None:
        import difflib

        near = difflib.get_close_matches(args.name, BY_NAME, n=1)
        raise UserError(f"there is no experiment {args.name!r}" + (f": did you mean {near[0]}?" if near else "")
                        + "; python course.py experiment --list shows them")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.budget is not None and not 1 <= args.budget <= 100_000:
        raise UserError(f"--budget must be from 1 to 100,000 steps, got {args.budget}")
    try:
        seed = parse_seed(str(args.seed), "--seed")
    except ValueError as e:
        raise UserError(str(e)) from None
    from . import lab as bench

    text, source = read_text(args.file, False, ui, lang)
    settings = bench.QUICK if args.quick else bench.FULL
    budget = args.budget or (bench.QUICK_BUDGET if args.quick else bench.DEFAULT_BUDGET)
    if args.quick:
        text = text[:bench.QUICK_CHARACTERS]
    steps = load_steps(whose_code(args, ui))
    with learner_code(steps.mine):
        return _run(ui, experiment, bench.Lab(steps, text, settings, budget, seed, lang), source, Path(args.out),
                    args.threads)


def _list(ui: UI, experiments, lang: str) -> None:
    pl = lang == "pl"
    ui.say("[bold]" + ("Eksperymenty" if pl else "Experiments") + "[/bold] (python course.py experiment NAME)")
    width = max(len(e.name) for e in experiments) + 2
    for e in experiments:
        ui.say(f"  [bold]{e.name:<{width}}[/bold]{escape(e.title[pl])}")
        ui.say(f"  {'':<{width}}[dim]{escape(('oczekiwane: ' if pl else 'expected: ') + e.expected[pl])}[/dim]")


def _run(ui: UI, experiment, lab, source: str, out: Path, threads: int) -> int:
    import torch

    pl = lab.lang == "pl"
    torch.set_num_threads(threads)
    ui.say(f"[bold]{escape(experiment.title[pl])}[/bold]")
    ui.say(escape(lab.words(f"On {source}, {len(lab.text):,} characters; {lab.budget} steps per variant, seed "
                            f"{lab.seed}, {threads} thread{'s' if threads > 1 else ''}.",
                            f"Na {source}, {len(lab.text):,} znaków; {lab.budget} kroków na wariant, ziarno "
                            f"{lab.seed}, wątki: {threads}.")))
    began = time.perf_counter()
    results = experiment.run(lab)
    ui.say("")
    ui.plain(results_table(lab, results))
    ui.say("")
    for r in results:
        ui.say(f"[bold]{escape(r.name)}[/bold]: {escape(r.sample)}")
    chart = (experiment.chart or _validation)(lab, results)
    xs = {name: chart.xs for name in chart.series}
    ui.say("")
    ui.plain(charts.line_chart(chart.series, width=min(72, ui.out.width - 1), height=12, title=experiment.title[pl],
                               x_label=chart.x_label, y_label=chart.y_label, xs=xs))
    try:
        saved = charts.save_lines_png(chart.series, out / f"{experiment.name}.png", title=experiment.title[pl],
                                      x_label=chart.x_label, y_label=chart.y_label, xs=xs)
    except OSError as e:
        ui.say(escape(lab.words(f"No picture: {e.strerror or e}.", f"Bez obrazka: {e.strerror or e}.")))
    else:
        ui.say(escape(lab.words(f"The same as a picture: {saved}", f"To samo jako obrazek: {saved}") if saved
                      else lab.words(f"No picture: {charts.NO_PICTURES}.", f"Bez obrazka: {charts.NO_PICTURES}.")))
    ui.say("\n[bold]" + lab.words("What to notice", "Na co zwrócić uwagę") + "[/bold]")
    for line in experiment.notice[pl]:
        ui.say(f"  - {escape(line)}")
    showed = experiment.showed(results)
    verdict = (lab.words("yes", "tak") if showed else
               lab.words("not on this run (a longer --budget, or another seed, may show it)",
                         "nie w tym przebiegu (dłuższy --budget albo inne ziarno mogą to pokazać)"))
    ui.say(escape(lab.words(f"Expected: {experiment.expected[0]}. Showed: {verdict}.",
                            f"Oczekiwane: {experiment.expected[1]}. Widać to: {verdict}.")))
    ui.say(escape(lab.words(f"{time.perf_counter() - began:.0f} s in all.", f"Razem {time.perf_counter() - began:.0f} s.")))
    return 0


def _validation(lab, results):
    from .catalogue import validation_curves

    return validation_curves(lab, results)


def results_table(lab, results) -> str:
    """The experiment's table as plain text: one row a variant, the columns every experiment has and its own."""
    extra = [key for key in results[0].extra]
    head = [lab.words("variant", "wariant"), lab.words("parameters", "parametry"), lab.words("time", "czas"),
            lab.words("train loss", "strata ucz."), lab.words("val loss", "strata wal."),
            lab.words("bits/char", "bity/znak"), *extra]
    rows = [[r.name, f"{r.parameters:,}", f"{r.seconds:.1f} s", _number(r.train_loss), _number(r.val_loss),
             _number(r.bits_per_character), *(str(r.extra.get(key, "")) for key in extra)] for r in results]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "-"

