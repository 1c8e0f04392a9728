"""Terminal output: colour and prompts in a terminal, plain text everywhere else (pipes, CI, files)."""

import os
import sys

from rich.console import Console
from rich.markup import escape

__all__ = ["UI", "escape", "count"]


def count(n: int, singular: str, plural: str | None = None) -> str:
    """A number with its noun, agreeing: "1 step", "10 steps", "12,707 tokens"."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


class UI:
    def __init__(self, interactive: bool | None = None):
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):  # never die on a character the console cannot show
                stream.reconfigure(errors="replace")
        tty = sys.stdout.isatty()
        self.interactive = (sys.stdin.isatty() and tty) if interactive is None else interactive
        plain = not tty or bool(os.environ.get("NO_COLOR"))
        # soft_wrap keeps one check on one line when the output goes to a file or a pipe.
        self.out = Console(highlight=False, no_color=plain, soft_wrap=not tty, emoji=False)
        self.err = Console(stderr=True, highlight=False, no_color=plain, soft_wrap=True, emoji=False)

    def say(self, text: str = "", **kwargs) -> None:
        """Print rich markup (use escape() around anything the learner wrote)."""
        self.out.print(text, **kwargs)

    def plain(self, text: str = "") -> None:
        """Print text exactly as it is: no markup, no wrapping."""
        self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.err.print(f"[red]error:[/red] {escape(text)}")

    def ask(self, prompt: str) -> str:
        """A line typed by the learner; EOFError when the input ends (Ctrl+D)."""
        self.out.print(prompt, end="")
        return input()

    def confirm(self, question: str) -> bool:
        try:
            answer = self.ask(escape(f"{question} [y/N] "))
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes", "t", "tak")

    def clear(self) -> None:
        if self.out.is_terminal:
            self.out.clear()
        else:
            self.plain("\n" + "-" * 60)
