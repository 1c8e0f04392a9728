"""course.py's command line: parse, pick the language, run one command, turn mistakes into one sentence."""

import argparse
import difflib
import os
import sys

from . import state, steps
from .commands import Course, CourseError
from .errors import UserError
from .i18n import LANGUAGES, system_language, t
from .ui import UI

COMMANDS = """commands:
  (none)            where you stand: the current step, its file, its lesson and how its checks stand
  list, status      every step: passed, current or locked, with quiz results
  lesson [N]        the explanation of step N (default: the current step)
  check [N]         run step N's checks on your code: what fails and why (--all: every check)
  watch [N]         run the checks again whenever you save a file under exercises/ (q quits)
  hint [N]          the next hint for the first failing check
  demo [N]          the step's live demo (your code once the step passes)
  quiz [N]          a few questions on step N (--answers 2,1,3 where there is no terminal)
  next              move on once the current step's checks pass
  goto N            go back (or forward) to any step already unlocked
  solution N        the reference for step N, once yours passes (--peek: before, with a warning)
  reset N | --all   restore the original stub, keeping a backup of your file in backups/
  train [FILE]      train a GPT on a text file (or --paste); see: python course.py train --help
  chat              talk to the model you trained; see: python course.py chat --help
"""


def _step_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a step is a number from 1 to 11, not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lang", default=argparse.SUPPRESS, help="language: en or pl (remembered)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show whole tracebacks of failing checks")
    parser = argparse.ArgumentParser(
        prog="course.py", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="write-transformer: build GPT from scratch in 11 test-first steps.", epilog=COMMANDS)
    sub = parser.add_subparsers(dest="command", metavar="command")

    def command(name, help_text, aliases=()):
        return sub.add_parser(name, parents=[common], help=help_text, aliases=list(aliases))

    command("list", "every step and where you stand", aliases=["status"])
    for name, help_text in [("lesson", "the lesson of a step"), ("check", "run a step's checks"),
                            ("hint", "the next hint"), ("demo", "the live demo"), ("watch", "re-run checks on save")]:
        p = command(name, help_text)
        p.add_argument("n", nargs="?", type=_step_number, metavar="N")
        if name in ("check", "watch"):
            p.add_argument("--all", action="store_true", dest="all_checks",
                           help="every check on its own line, the passing ones too")
    q = command("quiz", "a step's quiz")
    q.add_argument("n", nargs="?", type=_step_number, metavar="N")
    q.add_argument("--answers", metavar="2,1,3", help="answer without a terminal: one number per question")
    command("next", "move on once the current step passes")
    command("goto", "go to an unlocked step").add_argument("n", type=_step_number, metavar="N")
    s = command("solution", "the reference for a step")
    s.add_argument("n", type=_step_number, metavar="N")
    s.add_argument("--peek", action="store_true", help="show it before your step passes")
    r = command("reset", "restore a step's stub")
    r.add_argument("n", nargs="?", type=_step_number, metavar="N")
    r.add_argument("--all", action="store_true", dest="everything", help="every step, and start over")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    from . import chat, train

    train.add_arguments(command("train", "train a GPT on a text file"))
    chat.add_arguments(command("chat", "talk to the trained model"))
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
        course.progress.lang = lang
        course.save()


def _dispatch(course: Course, args, parser) -> int:
    match args.command:
        case None:
            return course.overview()
        case "list" | "status":
            return course.list()
        case "lesson":
            return course.lesson(args.n)
        case "check":
            return course.check_command(args.n)
        case "hint":
            return course.hint(args.n)
        case "demo":
            return course.demo(args.n)
        case "watch":
            return course.watch(args.n)
        case "quiz":
            return course.quiz(args.n, args.answers)
        case "next":
            return course.next()
        case "goto":
            return course.goto(args.n)
        case "solution":
            return course.solution(args.n, args.peek)
        case "train":
            from . import train

            return train.run(args, course.ui, t.lang)
        case "chat":
            from . import chat

            return chat.run(args, course.ui)
        case "reset":
            if args.n is None and not args.everything:
                raise CourseError("reset needs a step number, or --all")
            return course.reset(args.n, args.everything, args.yes)
    parser.error(f"unknown command {args.command!r}")
    return 2
