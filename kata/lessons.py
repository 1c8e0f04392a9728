"""Lessons and solutions, shown in the terminal: rendered Markdown and highlighted code in a terminal,
the plain text elsewhere."""

import re
from pathlib import Path

from rich.markdown import Markdown
from rich.syntax import Syntax

from .ui import UI


def show_markdown(ui: UI, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if ui.out.is_terminal:
        ui.out.print(Markdown(text, code_theme="monokai", hyperlinks=False))
    else:
        ui.plain(text.rstrip())


def first_section(path: Path) -> str:
    """The lesson's title and its first section: what the step adds, shown on the course's start page."""
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^## ", text, maxsplit=2)
    if len(parts) < 2:
        return text.strip()
    return ("## " + parts[1]).strip()


def show_section(ui: UI, markdown: str) -> None:
    if ui.out.is_terminal:
        ui.out.print(Markdown(markdown, code_theme="monokai", hyperlinks=False))
    else:
        ui.plain(markdown)


def show_code(ui: UI, path: Path) -> None:
    code = path.read_text(encoding="utf-8")
    if ui.out.is_terminal:
        ui.out.print(Syntax(code, "python", theme="monokai", line_numbers=True, word_wrap=True))
    else:
        ui.plain(code.rstrip())
