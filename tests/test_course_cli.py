"""course.py as a learner uses it, in a private copy of the repository: without a terminal (scripts, CI) and
through a real pseudo-terminal where it asks questions."""

import json
import re
import time

import pytest
from course_helpers import run_course, solve, spawn_course

pytestmark = pytest.mark.timeout(180)  # each test runs course.py, which runs the checks in a child process

STEP1 = "exercises/step01_tokenizer.py"
TRACEBACK = "Traceback (most recent call last)"


def progress(repo):
    return json.loads((repo / "progress.json").read_text())


def test_a_fresh_clone_starts_at_step_1(repo):
    out = run_course(repo)
    assert out.returncode == 0, out.stderr
    assert "step 1 of 11" in out.stdout and STEP1 in out.stdout
    assert "## What this step adds" in out.stdout, "the start page shows the lesson's first section"
    assert "write `get_stats()` in " + STEP1 in out.stdout, "the stub's checks fail, each saying what to write"
    assert TRACEBACK not in out.stdout + out.stderr
    assert progress(repo)["current"] == 1


def test_check_on_the_stub_says_what_to_write_on_one_screen(repo):
    out = run_course(repo, "check", "1")
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) <= 20, "the result fits an 80x24 screen\n" + out.stdout
    lines = [line for line in out.stdout.splitlines() if line.lstrip().startswith(("✓", "✗"))]
    assert lines and all(line.lstrip().startswith("✗ write `") for line in lines), out.stdout
    assert len(lines) == len(set(lines)), "one line per function to write, not one per check"
    assert "python course.py hint 1" in out.stdout
    assert TRACEBACK not in out.stdout + out.stderr

    every = run_course(repo, "check", "1", "--all")
    lines = [line for line in every.stdout.splitlines() if line.lstrip().startswith(("✓", "✗"))]
    assert len(lines) >= 10 and all(" — " in line for line in lines), "--all: every check, why on its own line"


def test_check_names_generated_cases_in_words(repo):
    out = run_course(repo, "check", "2", "--all")
    assert "[ids1-512" not in out.stdout and "(ids [-1, 4], vocab_size 512, bad -1)" in out.stdout, out.stdout


def test_verbose_check_shows_the_tracebacks(repo):
    out = run_course(repo, "check", "1", "-v")
    assert "NotImplementedError" in out.stdout


def test_solving_a_step_then_next_unlocks_the_next_step(repo):
    assert run_course(repo, "next").returncode == 1, "next refuses while the step fails"
    assert progress(repo)["unlocked"] == 1
    solve(repo, "step01_tokenizer")
    out = run_course(repo, "next")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Unlocked step 2" in out.stdout and "exercises/step02_data.py" in out.stdout
    p = progress(repo)
    assert (p["current"], p["unlocked"], p["passed"]) == (2, 2, [1])
    listing = run_course(repo, "list").stdout
    assert re.search(r"✓\s+1\..*passed", listing) and re.search(r"▸\s+2\..*current", listing)
    assert re.search(r"·\s+3\..*locked", listing)


def test_goto_refuses_a_locked_step_and_solution_waits_for_a_pass(repo):
    out = run_course(repo, "goto", "5")
    assert out.returncode == 1 and "step 5 is locked" in out.stderr
    out = run_course(repo, "solution", "1")
    assert out.returncode == 1 and "--peek" in out.stderr
    out = run_course(repo, "solution", "1", "--peek")
    assert out.returncode == 0 and "try a hint first" in out.stdout and "def get_stats" in out.stdout
    assert TRACEBACK not in out.stdout + out.stderr


def test_reset_restores_the_stub_and_keeps_a_backup(repo):
    mine = "# my own attempt\n" + (repo / STEP1).read_text()
    (repo / STEP1).write_text(mine)
    out = run_course(repo, "reset", "1")
    assert out.returncode == 2 and "--yes" in out.stderr, "without a terminal, reset asks for --yes"
    assert (repo / STEP1).read_text() == mine
    out = run_course(repo, "reset", "1", "--yes")
    assert out.returncode == 0, out.stderr
    assert (repo / STEP1).read_text() == (repo / "kata/stubs/step01_tokenizer.py").read_text()
    backups = list((repo / "backups").glob("step01_tokenizer.*.py"))
    assert len(backups) == 1 and backups[0].read_text() == mine


def test_reset_all_restores_every_stub_and_starts_over(repo):
    solve(repo, "step01_tokenizer")
    solve(repo, "step02_data")
    (repo / "progress.json").write_text(json.dumps({"version": 1, "current": 3, "unlocked": 3, "passed": [1, 2],
                                                    "quiz": {}, "hints": {}, "lang": "", "finished": False}))
    out = run_course(repo, "reset", "--all", "--yes")
    assert out.returncode == 0 and "Restored 2 stub(s)" in out.stdout, out.stdout + out.stderr
    for name in ("step01_tokenizer.py", "step02_data.py"):
        assert (repo / "exercises" / name).read_text() == (repo / "kata/stubs" / name).read_text()
        assert len(list((repo / "backups").glob(name.replace(".py", ".*.py")))) == 1
    assert (progress(repo)["current"], progress(repo)["passed"]) == (1, [])


def test_reset_asks_at_the_prompt(repo):
    (repo / STEP1).write_text("# mine\n")
    child = spawn_course(repo, "reset", "1")
    child.expect(r"\[y/N\]")
    child.sendline("n")
    child.expect("Nothing changed")
    child.expect(pexpect_eof())
    assert (repo / STEP1).read_text() == "# mine\n"
    child = spawn_course(repo, "reset", "1")
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect("Restored the stub of step 1")
    child.expect(pexpect_eof())
    assert (repo / STEP1).read_text() != "# mine\n"


def test_a_corrupt_progress_file_is_rebuilt_from_the_checks(repo):
    solve(repo, "step01_tokenizer")
    (repo / "progress.json").write_text("{ this is not json")
    out = run_course(repo, "list")
    assert out.returncode == 0
    assert "unreadable" in out.stdout and "rebuilt" in out.stdout
    p = progress(repo)
    assert p["passed"] == [1] and p["current"] == 2, "step 1 passes, so the learner stands at step 2"
    assert TRACEBACK not in out.stdout + out.stderr


def test_a_lost_progress_file_is_rebuilt_too(repo):
    solve(repo, "step01_tokenizer")
    out = run_course(repo, "list")
    assert "rebuilt it from your checks" in out.stdout
    assert progress(repo)["current"] == 2


def test_a_syntax_error_shows_file_line_and_caret(repo):
    text = (repo / STEP1).read_text().replace("import json\n", "import json\nx = (1,\n", 1)
    (repo / STEP1).write_text(text)
    out = run_course(repo, "check", "1")
    assert out.returncode == 1
    assert re.search(r"syntax error in exercises/step01_tokenizer\.py, line \d+", out.stdout), out.stdout
    assert re.search(r"\n\s+\^", out.stdout), "a caret points at the mistake"
    assert TRACEBACK not in out.stdout + out.stderr


def test_an_import_error_in_an_earlier_step_names_that_step(repo):
    solve(repo, "step04_attention")
    broken = repo / "exercises/step03_embeddings.py"  # step 4 builds on step 3
    broken.write_text("import no_such_module_anywhere\n" + broken.read_text())
    out = run_course(repo, "check", "4")
    assert "step 3, exercises/step03_embeddings.py cannot be imported" in out.stdout, out.stdout
    assert "ModuleNotFoundError" in out.stdout


def test_an_infinite_loop_is_stopped_and_named(repo):
    text = (repo / STEP1).read_text()
    body = '    """'
    start = text.index("def get_stats")
    doc_end = text.index(body, text.index(body, start) + 1) + len(body) + 1
    (repo / STEP1).write_text(text[:doc_end] + "    while True:\n        pass\n" + text[doc_end:])
    began = time.monotonic()
    out = run_course(repo, "check", "1", COURSE_CHECK_TIMEOUT="2")
    assert time.monotonic() - began < 40, "a stuck check ends the run quickly"
    assert re.search(r"stopped after 2 s inside `get_stats\(\)`.*loop", out.stdout), out.stdout
    assert "not run" in out.stdout, "the checks after the stuck one are reported as not run"


def test_hints_come_one_after_another(repo):
    first = run_course(repo, "hint", "1")
    assert first.returncode == 0 and "Hint 1 of" in first.stdout, first.stdout
    second = run_course(repo, "hint", "1")
    assert "Hint 2 of" in second.stdout
    assert first.stdout.split("Hint 1 of")[1] != second.stdout.split("Hint 2 of")[1]


def test_lesson_and_demo_run(repo):
    out = run_course(repo, "lesson", "1")
    assert out.returncode == 0 and "## What you write" in out.stdout
    out = run_course(repo, "demo", "1")
    assert out.returncode == 0, out.stderr
    assert "Running the reference" in out.stdout


def test_quiz_without_a_terminal_takes_answers_as_arguments(repo):
    out = run_course(repo, "quiz", "1")
    assert out.returncode == 0 and "--answers" in out.stdout
    count = len(re.findall(r"(?m)^\d+\. ", out.stdout))
    out = run_course(repo, "quiz", "1", "--answers", ",".join(["1"] * count))
    assert out.returncode == 0 and f"of {count} right" in out.stdout
    assert progress(repo)["quiz"]["1"]["total"] == count
    out = run_course(repo, "quiz", "1", "--answers", "9")
    assert out.returncode == 2 and "--answers needs" in out.stderr


def test_quiz_answered_at_the_prompt(repo):
    child = spawn_course(repo, "quiz", "1")
    answered = 0
    while True:
        i = child.expect([r"Your answer \(1-(\d)\): ", r"You answered (\d+) of (\d+) right"])
        if i == 1:
            break
        child.sendline("x")  # not a number: asked again
        child.expect("Please type a number")
        child.expect(r"Your answer \(1-\d\): ")
        child.sendline("1")
        answered += 1
    total = int(child.match.group(2))
    child.expect(pexpect_eof())
    assert answered == total and progress(repo)["quiz"]["1"]["total"] == total


def test_watch_reruns_the_checks_when_a_file_is_saved(repo):
    child = spawn_course(repo, "watch", "1", timeout=60)
    child.expect(r"\d+ of \d+ checks pass")
    child.expect("Waiting for you to save")
    solve(repo, "step01_tokenizer")
    child.expect(r"All \d+ checks pass")
    child.expect("Step 1 passes")
    child.send("q")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_during_checks_stops_cleanly(repo):
    child = spawn_course(repo, "watch", "1", timeout=60)
    child.expect(r"checks pass")
    child.sendintr()
    child.expect("Stopped")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 130
    assert TRACEBACK not in child.before


def at_the_last_step(repo, unsolved: str | None) -> None:
    p = {"version": 1, "current": 11, "unlocked": 11, "passed": list(range(1, 11)), "quiz": {}, "hints": {},
         "lang": "", "finished": False}
    (repo / "progress.json").write_text(json.dumps(p))
    for module in sorted(path.stem for path in (repo / "solutions").glob("step*.py")):
        if module != unsolved:
            solve(repo, module)


def test_next_after_the_last_step_sends_you_to_the_first_failing_step(repo):
    at_the_last_step(repo, unsolved="step04_attention")  # the model runs PyTorch's fused attention without it
    out = run_course(repo, "next")
    assert "Checking every step once more" in out.stdout, out.stdout
    assert out.returncode == 1 and "back to step 4" in out.stdout
    assert progress(repo)["current"] == 4


def test_next_after_the_last_step_finishes_the_course(repo):
    at_the_last_step(repo, unsolved=None)
    out = run_course(repo, "next")
    assert out.returncode == 0 and "You have finished the course" in out.stdout, out.stdout
    assert progress(repo)["finished"] is True
    assert "You have finished the course" in run_course(repo).stdout


def test_polish(repo):
    out = run_course(repo, "list", "--lang", "pl")
    assert out.returncode == 0 and "Tokenizer BPE na bajtach" in out.stdout and "bieżący" in out.stdout
    assert progress(repo)["lang"] == "pl"
    assert "Przechodzi 0 z" in run_course(repo, "check", "2").stdout, "the choice is remembered"


@pytest.mark.parametrize("args,message", [
    (["check", "12"], "there is no step 12"),
    (["goto", "x"], "a step is a number"),
    (["reset"], "reset needs a step number"),
    (["--lang", "xx", "list"], "unknown language"),
])
def test_mistyped_commands_get_one_sentence(repo, args, message):
    out = run_course(repo, *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert TRACEBACK not in out.stdout + out.stderr


def pexpect_eof():
    import pexpect

    return pexpect.EOF
