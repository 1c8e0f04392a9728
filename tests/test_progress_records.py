"""Progress follows the checks: whatever runs a step's checks records whether that step passes, and `list`,
`demo` and `solution` agree with that step's last check. Backups made by `reset` never overwrite each other."""

import json
import re
from datetime import datetime, timedelta

import pytest
from course_helpers import run_course, solve, spawn_course

pytestmark = pytest.mark.timeout(180)  # each test runs course.py, which runs the checks in a child process

STEP1 = "exercises/step01_tokenizer.py"
TRACEBACK = "Traceback (most recent call last)"


def write_progress(repo, current=1, unlocked=1, passed=()):
    """A progress file as course.py writes it, so that no command rebuilds it from the checks."""
    (repo / "progress.json").write_text(json.dumps({
        "version": 1, "current": current, "unlocked": unlocked, "passed": list(passed),
        "quiz": {}, "hints": {}, "lang": "", "finished": False}))


def passed(repo):
    return json.loads((repo / "progress.json").read_text())["passed"]


def listed(repo, n):
    """The line of step n in `course.py list`."""
    out = run_course(repo, "list")
    assert out.returncode == 0, out.stdout + out.stderr
    return next(line for line in out.stdout.splitlines() if re.search(rf"\s{n}\. ", line))


def test_a_step_solved_ahead_counts_once_its_check_passes(repo):
    write_progress(repo)  # standing at step 1
    for module in ("step01_tokenizer", "step02_data", "step03_embeddings", "step04_attention"):
        solve(repo, module)
    out = run_course(repo, "check", "4")
    assert out.returncode == 0 and re.search(r"All \d+ checks pass", out.stdout), out.stdout + out.stderr
    assert 4 in passed(repo)
    line = listed(repo, 4)
    assert "passed" in line and "locked" not in line, line
    out = run_course(repo, "demo", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "does not pass yet" not in out.stdout and "Running your code (step 4 passes)" in out.stdout
    out = run_course(repo, "solution", "4")
    assert out.returncode == 0, out.stderr
    assert "--peek" not in out.stdout + out.stderr and "def " in out.stdout

    (repo / "exercises/step04_attention.py").write_text((repo / "kata/stubs/step04_attention.py").read_text())
    out = run_course(repo, "check", "4")  # broken by hand, not by reset: only the check can tell
    assert out.returncode == 1
    assert 4 not in passed(repo)
    assert "passed" not in listed(repo, 4)
    assert run_course(repo, "solution", "4").returncode == 1, "the solution is hidden again"


def test_the_start_page_and_watch_record_what_they_check(repo):
    write_progress(repo, current=1, unlocked=2, passed=[1])  # step 1 passed once, then the file went back
    out = run_course(repo)
    assert out.returncode == 0 and "step 1 of" in out.stdout, out.stdout + out.stderr
    assert passed(repo) == [], "the start page found step 1 failing"
    solve(repo, "step01_tokenizer")
    child = spawn_course(repo, "watch", "1", timeout=60)
    import pexpect  # spawn_course skips the test where pexpect is missing

    child.expect("Step 1 passes")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert passed(repo) == [1], "watch found step 1 passing"


def test_a_step_passed_again_after_reset_counts_again(repo):
    write_progress(repo, current=2, unlocked=2, passed=[1])
    solve(repo, "step01_tokenizer")
    mine = (repo / STEP1).read_text()
    assert run_course(repo, "reset", "1", "--yes").returncode == 0
    assert "passed" not in listed(repo, 1)
    (repo / STEP1).write_text(mine)  # the learner restores their file
    out = run_course(repo, "check", "1")
    assert out.returncode == 0, out.stdout
    assert passed(repo) == [1]
    assert re.search(r"✓\s+1\..*passed", listed(repo, 1))


def test_next_from_a_failing_step_refuses_and_forgets_its_pass(repo):
    write_progress(repo, current=1, unlocked=2, passed=[1])  # step 1 passed once, then the file went back
    out = run_course(repo, "next")
    assert out.returncode == 1 and "Unlocked" not in out.stdout, out.stdout
    p = json.loads((repo / "progress.json").read_text())
    assert (p["current"], p["passed"]) == (1, [])
    assert "passed" not in listed(repo, 1)


def test_two_resets_in_a_row_keep_two_backups(repo):
    # Backups already there under every name the next seconds would give: as if many resets ran in one second.
    (repo / "backups").mkdir()
    now = datetime.now()
    earlier = [repo / "backups" / f"step01_tokenizer.{now + timedelta(seconds=s):%Y%m%d-%H%M%S}.py" for s in range(-1, 30)]
    for path in earlier:
        path.write_text("# an earlier backup\n")
    first, second = "# first attempt\n", "# second attempt\n"
    (repo / STEP1).write_text(first)
    assert run_course(repo, "reset", "1", "--yes").returncode == 0
    (repo / STEP1).write_text(second)
    out = run_course(repo, "reset", "1", "--yes")
    assert out.returncode == 0, out.stderr
    assert all(path.read_text() == "# an earlier backup\n" for path in earlier), "no backup was overwritten"
    backups = sorted(set((repo / "backups").glob("step01_tokenizer.*.py")) - set(earlier))
    assert len(backups) == 2, backups
    assert sorted(b.read_text() for b in backups) == sorted([first, second])
    named = re.search(r"your file is in (backups/\S+\.py)", out.stdout).group(1)
    assert (repo / named).read_text() == second, "reset names the backup it wrote"


def test_reset_when_backups_is_a_file_says_so_and_changes_nothing(repo):
    mine = "# my own attempt\n"
    (repo / STEP1).write_text(mine)
    (repo / "backups").write_text("not a folder\n")
    out = run_course(repo, "reset", "1", "--yes")
    assert out.returncode != 0
    assert TRACEBACK not in out.stdout + out.stderr
    message = out.stderr.strip()
    assert "backups" in message and len(message.splitlines()) == 1, out.stderr
    assert (repo / STEP1).read_text() == mine
    assert (repo / "backups").read_text() == "not a folder\n"
