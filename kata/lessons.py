"""Lessons and solutions, shown in the terminal: rendered Markdown and highlighted code in a terminal,
the plain text elsewhere."""

import os
import re
import shutil
from pathlib import Path

from rich.markdown import Markdown
from rich.syntax import Syntax

from .ui import UI


def show_markdown(ui: UI, path: Path) -> None:
    """A lesson: in a terminal, rendered, and in a pager (less -R keeps its colours) when it is longer than the
    screen; elsewhere the Markdown as it is."""
    text = path.read_text(encoding="utf-8")
    if not ui.out.is_terminal:
        ui.plain(text.rstrip())
        return
    rendered = Markdown(text, code_theme="monokai", hyperlinks=False)
    lines = ui.out.render_lines(rendered, ui.out.options, pad=False)
    if not ui.interactive or len(lines) <= ui.out.height - 1 or not _have_pager():
        ui.out.print(rendered)
        return
    os.environ.setdefault("LESS", "-R")  # colours through, and a lesson shorter than the screen just prints
    with ui.out.pager(styles=True):
        ui.out.print(rendered)


def _have_pager() -> bool:
    return bool(os.environ.get("PAGER")) or shutil.which("less") is not None


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
