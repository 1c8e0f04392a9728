"""course.py's command line: parse, pick the language, run one command, turn mistakes into one sentence."""

import argparse
import difflib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from . import state, steps
from .commands import Course, CourseError
from .errors import UserError
from .i18n import LANGUAGES, system_language, t
from .ui import UI

@dataclass(frozen=True)
class Command:
    """One command of course.py: the parser, the help text and the dispatch all read this table."""

    usage: str                      # how it is called, as the help shows it: "check [N]"
    summary: str                    # one line for the help
    run: Callable                   # (course, args) -> exit code
    arguments: Callable = lambda parser: None
    aliases: tuple = ()
    maintainer: bool = False        # listed apart, for whoever changes the course

    @property
    def name(self) -> str:
        return self.usage.split()[0]


def _step_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a step is a number from 1 to {len(steps.all_steps())}, not {text!r}") from None


def _optional_step(parser) -> None:
    parser.add_argument("n", nargs="?", type=_step_number, metavar="N")


def _checks_arguments(parser) -> None:
    _optional_step(parser)
    parser.add_argument("--all", action="store_true", dest="all_checks",
                        help="every check on its own line, the passing ones too")


def _quiz_arguments(parser) -> None:
    _optional_step(parser)
    parser.add_argument("--answers", metavar="2,1,3", help="answer without a terminal: one number per question")


def _solution_arguments(parser) -> None:
    parser.add_argument("n", type=_step_number, metavar="N")
    parser.add_argument("--peek", action="store_true", help="show it before your step passes")


def _reset_arguments(parser) -> None:
    _optional_step(parser)
    parser.add_argument("--all", action="store_true", dest="everything", help="every step, and start over")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _reset(course: Course, args) -> int:
    if args.n is None and not args.everything:
        raise UserError("reset needs a step number, or --all")
    return course.reset(args.n, args.everything, args.yes)


def _train_arguments(parser) -> None:
    from . import train

    train.add_arguments(parser)


def _chat_arguments(parser) -> None:
    from . import chat

    chat.add_arguments(parser)


def _train(course: Course, args) -> int:
    from . import train

    return train.run(args, course.ui, t.lang)


def _chat(course: Course, args) -> int:
    from . import chat

    return chat.run(args, course.ui)


def _experiment_arguments(parser) -> None:
    from . import experiments

    experiments.add_arguments(parser)


def _experiment(course: Course, args) -> int:
    from . import experiments

    return experiments.run(args, course.ui, t.lang)


def _inspect_arguments(parser) -> None:
    from . import inside

    inside.add_arguments(parser)


def _inspect(course: Course, args) -> int:
    from . import inside

    return inside.run(args, course.ui, t.lang)


def _hf_command(name: str) -> Callable:
    """export and import: (course, args) -> exit code, with kata/hf.py imported only when one of them runs."""
    def run(course: Course, args) -> int:
        from . import hf

        return getattr(hf, f"run_{name}")(args, course.ui)
    return run


def _hf_arguments(name: str) -> Callable:
    def arguments(parser) -> None:
        from . import hf

        getattr(hf, f"add_{name}_arguments")(parser)
    return arguments


def _dev(course: Course, args) -> int:
    from . import dev

    return dev.run(course.ui, course.root)


TABLE = (
    Command("list", "every step: passed, current or locked, with quiz results", lambda c, a: c.list(),
            aliases=("status",)),
    Command("lesson [N]", "the explanation of step N (default: the current step)", lambda c, a: c.lesson(a.n),
            _optional_step),
    Command("check [N]", "run step N's checks on your code: what fails and why (--all: every check)",
            lambda c, a: c.check_command(a.n), _checks_arguments),
    Command("watch [N]", "run the checks again whenever you save a file under exercises/ (q quits)",
            lambda c, a: c.watch(a.n), _checks_arguments),
    Command("hint [N]", "the next hint for the first failing check", lambda c, a: c.hint(a.n), _optional_step),
    Command("demo [N]", "the step's live demo (your code once the step passes)", lambda c, a: c.demo(a.n),
            _optional_step),
    Command("quiz [N]", "a few questions on step N (--answers 2,1,3 where there is no terminal)",
            lambda c, a: c.quiz(a.n, a.answers), _quiz_arguments),
    Command("next", "move on once the current step's checks pass", lambda c, a: c.next()),
    Command("goto N", "go back (or forward) to any step already unlocked", lambda c, a: c.goto(a.n),
            lambda p: p.add_argument("n", type=_step_number, metavar="N")),
    Command("solution N", "the reference for step N, once yours passes (--peek: before, with a warning)",
            lambda c, a: c.solution(a.n, a.peek), _solution_arguments),
    Command("reset N | --all", "restore the original stub, keeping a backup of your file in backups/", _reset,
            _reset_arguments),
    Command("train [FILE]", "train a GPT on a text file (or --paste); see: python course.py train --help", _train,
            _train_arguments),
    Command("chat", "talk to the model you trained; see: python course.py chat --help", _chat, _chat_arguments),
    Command("inspect [PROMPT]", "look inside the model you trained: tokens, attention, logit lens, neighbours",
            _inspect, _inspect_arguments),
    Command("experiment NAME", "train variants side by side: d_model, heads, positions... (--list shows them)",
            _experiment, _experiment_arguments),
    Command("export OUT", "write the model you trained as a Hugging Face GPT-2 folder (transformers loads it)",
            _hf_command("export"), _hf_arguments("export")),
    Command("import HF_DIR", "make a Hugging Face GPT-2 (--download gpt2: the real one) a checkpoint chat talks to",
            _hf_command("import"), _hf_arguments("import")),
    Command("dev check", "for whoever changes the course: is every step whole? (CONTRIBUTING.md)", _dev,
            lambda p: p.add_argument("what", choices=["check"], help="check: every step has all its parts"),
            maintainer=True),
)



def help_text() -> str:
    """The list of commands under --help, made from the table."""
    rows = [("(none)", "the course's home: the current step, its lesson and how its checks stand")]
    rows += [(c.usage + (f", {', '.join(c.aliases)}" if c.aliases else ""), c.summary)
             for c in TABLE if not c.maintainer]
    apart = [(c.usage, c.summary) for c in TABLE if c.maintainer]
    width = max(len(usage) for usage, _ in rows + apart) + 2
    lines = "".join(f"  {usage:<{width}}{summary}\n" for usage, summary in rows)
    return "commands:\n" + lines + "\n" + "".join(f"  {usage:<{width}}{summary}\n" for usage, summary in apart)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lang", default=argparse.SUPPRESS, help="language: en or pl (remembered)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show whole tracebacks of failing checks")
    parser = argparse.ArgumentParser(
        prog="course.py", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"write-transformer: build GPT from scratch in {len(steps.all_steps())} test-first steps.",
        epilog=help_text())
    sub = parser.add_subparsers(dest="command", metavar="command")
    for c in TABLE:
        c.arguments(sub.add_parser(c.name, parents=[common], help=c.summary, aliases=list(c.aliases)))
    return parser


def exit_now(code: int) -> None:
    """Leave without the interpreter's clean-up once torch is loaded (most of a second); files are closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    if "torch" in sys.modules:
        os._exit(code)
    sys.exit(code)


def long_forms(argv: list[str]) -> list[str]:
    """The single-file course's spellings: --train FILE, --paste, --interactive."""
    if "--train" in argv:
        i = argv.index("--train")
        return ["train", *argv[:i], *argv[i + 1:]]
    if "--interactive" in argv:
        return ["chat", *[a for a in argv if a != "--interactive"]]
    if "--paste" in argv and "train" not in argv:
        return ["train", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ui = UI()
    parser = build_parser()
    argv = long_forms(argv)
    unknown = _unknown_command(argv, parser)
    if unknown:
        lang = argv[argv.index("--lang") + 1] if "--lang" in argv[:-1] else None
        t.lang = lang if lang in LANGUAGES else (_saved_language() or system_language())
        key, values = unknown
        ui.error(t(key, **values))
        return 2
    args = parser.parse_args(argv)
    course = Course(ui, verbose=getattr(args, "verbose", False))
    course.everything = getattr(args, "all_checks", False)
    try:
        _choose_language(course, getattr(args, "lang", None))
        return _dispatch(course, args, parser)
    except UserError as e:
        ui.error(str(e))
        return e.code
    except (KeyboardInterrupt, EOFError):  # Ctrl+C anywhere, Ctrl+D at a prompt
        ui.say(f"\n{t('interrupted')}")
        return 130
    except BrokenPipeError:  # the output went to a program that stopped reading (| head): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _saved_language() -> str:
    try:
        saved = state.load(steps.ROOT)
    except state.ProgressError:
        return ""
    return saved.lang if saved else ""


def _unknown_command(argv: list[str], parser: argparse.ArgumentParser) -> tuple | None:
    """The message for a command that does not exist, naming the nearest one ("chek" -> "check")."""
    names = [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
             for name in action.choices]
    words = iter(argv)
    for word in words:
        if word == "--lang":
            next(words, None)
        elif not word.startswith("-"):
            if word in names:
                return None
            close = difflib.get_close_matches(word, names, n=1, cutoff=0.5)
            if close:
                return ("no_command_near", {"word": word, "near": close[0]})
            return ("no_command", {"word": word})
    return None


def _choose_language(course: Course, lang: str | None) -> None:
    """--lang (remembered in progress.json), else the remembered choice, else the system's locale."""
    if lang is not None and lang not in LANGUAGES:
        raise CourseError(t("bad_lang", lang=lang, choices=", ".join(LANGUAGES)))
    try:
        saved = state.load(course.root)
    except state.ProgressError:
        saved = None  # reported, and rebuilt, when the progress is first needed
    t.lang = lang or (saved.lang if saved else "") or system_language()
    if lang is not None and course.progress.lang != lang:
        course.progress.speak(lang)
        course.save()


def _dispatch(course: Course, args, parser) -> int:
    if args.command is None:
        if course.ui.interactive:
            from . import home

            return home.run(course)
        return course.overview()
    by_name = {name: c for c in TABLE for name in (c.name, *c.aliases)}
    return by_name[args.command].run(course, args)
