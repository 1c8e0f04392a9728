"""Quizzes: a few questions per step, each with one right answer and why it is right."""

import sys
from pathlib import Path

from .i18n import t
from .ui import UI, escape

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        questions = tomllib.load(f)["question"]
    for q in questions:
        assert 1 <= q["answer"] <= len(q["choices"]), f"{path}: answer {q['answer']} is not one of the choices"
    return questions


def parse_answers(text: str, questions: list[dict]) -> list[int]:
    """"2,1,3" -> [2, 1, 3], each within its question's choices; ValueError otherwise."""
    try:
        answers = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        answers = []
    if len(answers) != len(questions) or not all(1 <= a <= len(q["choices"]) for a, q in zip(answers, questions, strict=True)):
        raise ValueError(t("quiz_bad_answers", count=len(questions), got=text))
    return answers


def run(ui: UI, number: int, questions: list[dict], answers: list[int] | None) -> int:
    """Ask (or take the given answers), explain each, and return the score."""
    ui.say(f"[bold]{t('quiz_header', n=number, count=len(questions))}[/bold]\n")
    score = 0
    for i, q in enumerate(questions):
        ui.say(f"[bold]{i + 1}. {escape(q['text'])}[/bold]")
        for j, choice in enumerate(q["choices"], start=1):
            ui.say(f"   {j}) {escape(choice)}")
        if answers is not None:
            answer = answers[i]
            ui.say(f"   → {answer}")
        else:
            answer = _ask(ui, len(q["choices"]))
        if answer == q["answer"]:
            score += 1
            ui.say(f"   [green]{t('quiz_right')}[/green] {escape(q['why'])}\n")
        else:
            ui.say(f"   [red]{t('quiz_wrong', answer=q['answer'])}[/red] {escape(q['why'])}\n")
    ui.say(f"[bold]{t('quiz_score', score=score, total=len(questions))}[/bold]")
    return score


def _ask(ui: UI, k: int) -> int:
    while True:
        reply = ui.ask(t("quiz_prompt", k=k)).strip()  # EOFError (Ctrl+D) ends the quiz: handled by the caller
        if reply.isascii() and reply.isdigit() and 1 <= int(reply) <= k:  # "²" is a digit that int() refuses
            return int(reply)
        ui.say(t("quiz_invalid", k=k))
