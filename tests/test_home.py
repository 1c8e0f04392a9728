"""The course's home (`python course.py` in a terminal) and `watch`, seen through a real 80x24 pseudo-terminal."""

import math
import re
import sys

import pytest
from course_helpers import course_env, run_course, solve

pytestmark = pytest.mark.timeout(180)

CLEAR = "\x1b[2J"  # what the screen receives when it is cleared
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def spawn(repo, *args):
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(sys.executable, ["course.py", *args], cwd=str(repo), encoding="utf-8", timeout=60,
                         dimensions=(24, 80), env=course_env(TERM="xterm", COLUMNS="80", LINES="24"))


def last_screen(child) -> list[str]:
    """The lines written since the screen was last cleared, as a person sees them."""
    text = child.before + (child.after if isinstance(child.after, str) else "")
    if CLEAR in text:
        text = text.rsplit(CLEAR, 1)[1]
    return ANSI.sub("", text).split("\n")


def rows(lines: list[str], width: int = 80) -> int:
    return sum(max(1, math.ceil(len(line) / width)) for line in lines)


def test_home_checks_on_save_and_opens_everything_with_one_key(repo):
    child = spawn(repo)
    child.expect("q quit")
    screen = last_screen(child)
    assert any("step 1 of 11" in line for line in screen), "the screen shows the current step\n" + "\n".join(screen)
    assert any("write `get_stats()`" in line for line in screen), "and the first function to write"
    assert any("course.py hint 1" in line for line in screen), "and the pointer to the hint"
    assert rows(screen) <= 24, "the whole home fits an 80x24 terminal:\n" + "\n".join(screen)

    child.send("h")
    child.expect("Hint 1 of")
    child.expect("Press any key")
    child.send(" ")
    child.expect("q quit")

    solve(repo, "step01_tokenizer")  # saving the file is enough: the home checks again by itself
    child.expect("Step 1 passes: press n")
    child.send("n")
    child.expect("Unlocked step 2")
    child.send(" ")
    child.expect("q quit")
    assert any("step 2 of 11" in line for line in last_screen(child))

    child.send("?")
    child.expect("does nothing here")
    child.send("q")
    child.expect(__import__("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0
    listing = run_course(repo, "list").stdout
    assert re.search(r"✓\s+1\..*passed", listing), "what the home did is kept in the progress"


def test_without_a_terminal_the_start_page_is_printed_and_the_course_returns(repo):
    out = run_course(repo)
    assert out.returncode == 0 and "q quit" not in out.stdout and "step 1 of 11" in out.stdout, out.stdout


def test_watch_clears_so_the_newest_result_fills_an_80x24_screen(repo):
    child = spawn(repo, "watch", "1")
    child.expect("q quits")
    first = last_screen(child)
    assert rows(first) <= 24 and any("write `merge()`" in line for line in first), "\n".join(first)
    solve(repo, "step01_tokenizer")
    child.expect("q quits")
    newest = last_screen(child)
    assert any("All 60 checks pass" in line or "checks pass." in line for line in newest), "\n".join(newest)
    assert not any("write `merge()`" in line for line in newest), "the earlier result was cleared away"
    child.send("q")
    child.expect(__import__("pexpect").EOF)
