"""The quizzes reward reading: no answer position or length gives the right choice away, every step asks for a
prediction, and the English and Polish quiz of a step ask the same questions with the same answers."""

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("en", "pl")
STEPS = range(1, 12)
MAX_POSITION_SHARE = 0.35    # no answer position is right in more than this share of a language's questions
MAX_LONGEST_SHARE = 1 / 3    # the right choice is the strictly longest in at most this share


def quiz(lang: str, step: int) -> list[dict]:
    with open(ROOT / "lessons" / lang / f"step{step:02d}.quiz.toml", "rb") as f:
        return tomllib.load(f)["question"]


def all_questions(lang: str) -> list[dict]:
    return [q for step in STEPS for q in quiz(lang, step)]


def position_shares(questions: list[dict]) -> dict[int, float]:
    """answers [1, 2, 2, 4] -> {1: 0.25, 2: 0.5, 4: 0.25}"""
    counts = Counter(q["answer"] for q in questions)
    return {position: n / len(questions) for position, n in sorted(counts.items())}


def right_is_longest(q: dict) -> bool:
    """True when the right choice has more characters than every other; a tie gives nothing away."""
    right = len(q["choices"][q["answer"] - 1])
    return all(right > len(c) for i, c in enumerate(q["choices"], start=1) if i != q["answer"])


def test_position_shares_are_computed_per_answer():
    qs = [{"answer": a} for a in (1, 2, 2, 4)]
    assert position_shares(qs) == {1: 0.25, 2: 0.5, 4: 0.25}


def test_right_is_longest_counts_only_a_strict_lead():
    assert right_is_longest({"choices": ["abc", "ab"], "answer": 1})
    assert not right_is_longest({"choices": ["abc", "abd"], "answer": 1})
    assert not right_is_longest({"choices": ["a", "ab"], "answer": 1})


@pytest.mark.parametrize("lang", LANGS)
def test_no_answer_position_is_right_too_often(lang):
    shares = position_shares(all_questions(lang))
    worst = max(shares, key=shares.get)
    assert shares[worst] <= MAX_POSITION_SHARE, (
        f"In the {lang} quizzes choice {worst} is the right one in {shares[worst]:.0%} of the questions, more than "
        f"{MAX_POSITION_SHARE:.0%}: move some right answers to other positions.")


@pytest.mark.parametrize("lang", LANGS)
def test_the_longest_choice_is_seldom_the_right_one(lang):
    questions = all_questions(lang)
    longest = [q["text"] for q in questions if right_is_longest(q)]
    share = len(longest) / len(questions)
    assert share <= MAX_LONGEST_SHARE, (
        f"In the {lang} quizzes the right choice is the longest in {len(longest)} of {len(questions)} questions "
        f"({share:.0%}), more than a third: shorten right choices or make wrong ones as precise.")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("step", STEPS)
def test_every_quiz_asks_for_a_prediction(lang, step):
    predictions = [q for q in quiz(lang, step) if q.get("kind") == "predict"]
    assert predictions, f"The {lang} quiz of step {step} has no question marked kind = \"predict\"."
    for q in predictions:
        assert re.search(r"\d", q["text"]) and q["text"].rstrip().endswith(("?", ":")), (
            f"The {lang} quiz of step {step} marks \"{q['text']}\" as a prediction, but it gives no numbers to "
            f"predict from or asks nothing.")


@pytest.mark.parametrize("step", STEPS)
def test_english_and_polish_quizzes_ask_the_same(step):
    en, pl = quiz("en", step), quiz("pl", step)
    assert len(en) == len(pl), f"Step {step} has {len(en)} English questions and {len(pl)} Polish ones."
    for i, (e, p) in enumerate(zip(en, pl, strict=True), start=1):
        assert (e["answer"], len(e["choices"]), e.get("kind")) == (p["answer"], len(p["choices"]), p.get("kind")), (
            f"Question {i} of step {step} differs between English and Polish in its answer, its number of "
            f"choices or its kind.")
