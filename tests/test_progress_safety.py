"""Nothing the learner made is lost, and no progress file ends in a traceback: a bad one is named in one sentence,
moved aside and rebuilt from the checks; one that cannot be saved stops a command that records something, and
only warns a command that shows; two commands at once both keep what they recorded."""

import errno
import json
import os
import subprocess
import sys
import tomllib

import pytest
from course_helpers import course_env, run_course

from kata import commands, state, steps
from kata.commands import Course, CourseError
from kata.i18n import t
from kata.ui import UI

pytestmark = pytest.mark.timeout(120)

N = len(steps.all_steps())
TRACEBACK = "Traceback (most recent call last)"
GOOD = {"version": 1, "current": 1, "unlocked": 1, "passed": [], "quiz": {}, "hints": {}, "lang": "", "finished": False}


def write(root, data=None, **change):
    (root / "progress.json").write_text(json.dumps({**GOOD, **change} if data is None else data))


def questions(root, n) -> int:
    with open(root / "lessons" / "en" / f"step{n:02d}.quiz.toml", "rb") as f:
        return len(tomllib.load(f)["question"])


def answers(root, n) -> str:
    return ",".join("1" for _ in range(questions(root, n)))


@pytest.fixture
def course(repo, monkeypatch):
    """A Course in this process on a private copy of the repository; rebuilding stands at step 1 without
    running the checks (the subprocess tests below rebuild for real)."""
    monkeypatch.setattr(t, "lang", "en")
    monkeypatch.setattr(Course, "_rebuild", lambda self: state.Progress())
    return lambda: Course(UI(interactive=False), root=repo)


# -- every bad progress file is one sentence -----------------------------------------------------------------

BAD = {
    "current above the last step": {**GOOD, "current": N + 1, "unlocked": N + 1},
    "unlocked above the last step": {**GOOD, "unlocked": N + 1},
    "true as the current step": {**GOOD, "current": True, "unlocked": True},
    "true as the version": {**GOOD, "version": True},
    "a step passed beyond the last": {**GOOD, "passed": [1, N + 1]},
    "true as a passed step": {**GOOD, "passed": [True]},
    "a quiz score as text": {**GOOD, "quiz": {"1": {"score": "3", "total": 5}}},
    "a quiz out of 0": {**GOOD, "quiz": {"1": {"score": 0, "total": 0}}},
    "a quiz score above its total": {**GOOD, "quiz": {"1": {"score": 6, "total": 5}}},
    "a quiz of true": {**GOOD, "quiz": {"1": {"score": True, "total": True}}},
    "a quiz for no step": {**GOOD, "quiz": {"x": {"score": 1, "total": 5}}},
    "a quiz for step 04": {**GOOD, "quiz": {"04": {"score": 1, "total": 5}}},
    "a quiz result as a list": {**GOOD, "quiz": {"1": [1, 5]}},
    "hints as a list": {**GOOD, "hints": {"1": ["test_x"]}},
    "a negative hint count": {**GOOD, "hints": {"1": {"test_x": -1}}},
    "a hint count of true": {**GOOD, "hints": {"1": {"test_x": True}}},
    "hints for step 0": {**GOOD, "hints": {"0": {}}},
    "an unknown language": {**GOOD, "lang": "xx"},
    "finished as 1": {**GOOD, "finished": 1},
    "a huge step": {**GOOD, "current": 10 ** 400},
}
RAW = {
    "100000 nested lists": "[" * 100_000 + "]" * 100_000,
    "a number of 5000 digits": '{"version": 1, "current": ' + "9" * 5000 + "}",
    "an empty file": "",
}


@pytest.mark.parametrize("data", list(BAD.values()) + list(RAW.values()), ids=list(BAD) + list(RAW))
def test_a_bad_progress_file_is_one_sentence(tmp_path, data):
    (tmp_path / "progress.json").write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(state.ProgressError) as e:
        state.load(tmp_path)
    message = str(e.value)
    assert message.startswith("progress.json ") and "\n" not in message and len(message) < 200, message
    assert "set_int_max_str_digits" not in message and "Expecting value" not in message, message


def test_a_newer_version_says_so(tmp_path):
    write(tmp_path, version=2)
    with pytest.raises(state.ProgressError, match="newer version of the course"):
        state.load(tmp_path)


def test_a_file_that_is_no_progress_is_never_read_whole(tmp_path):
    (tmp_path / "progress.json").write_bytes(b"\xff\xfe not text")
    with pytest.raises(state.ProgressError, match="is not UTF-8 text"):
        state.load(tmp_path)
    with open(tmp_path / "progress.json", "wb") as f:  # a sparse file: 256 MiB that take no room
        f.truncate(256 << 20)
    with pytest.raises(state.ProgressError, match=r"268,435,456 bytes"):
        state.load(tmp_path)
    (tmp_path / "progress.json").unlink()
    os.mkfifo(tmp_path / "progress.json")  # reading a pipe nobody writes to would wait for ever
    with pytest.raises(state.ProgressError, match="not a plain file"):
        state.load(tmp_path)


def test_a_byte_order_mark_and_a_symbolic_link_are_read(tmp_path):
    elsewhere = tmp_path / "synced"
    elsewhere.mkdir()
    (elsewhere / "mine.json").write_text("\ufeff" + json.dumps({**GOOD, "current": 2, "unlocked": 2}))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "progress.json").symlink_to(elsewhere / "mine.json")
    assert state.load(root).current == 2
    state.save(root, state.Progress(current=3, unlocked=3))
    assert (root / "progress.json").is_symlink(), "saving keeps the link"
    assert json.loads((elsewhere / "mine.json").read_text())["current"] == 3


# -- the course rebuilds, keeps the bad file, and never touches a folder -------------------------------------------

def test_a_bad_file_is_kept_aside_and_rebuilt(repo, course, capsys):
    write(repo, version=2, current=3)
    before = (repo / "progress.json").read_text()
    assert course().list() == 0
    out = capsys.readouterr().out
    assert "newer version" in out and "progress.json.unreadable" in out, out
    assert (repo / "progress.json.unreadable").read_text() == before, "nothing of the newer file is lost"
    assert state.load(repo) == state.Progress()


def test_a_folder_called_progress_json_is_left_alone(repo, course, capsys):
    (repo / "progress.json").mkdir()
    (repo / "progress.json" / "mine.txt").write_text("my notes")
    assert course().list() == 0, "a command that only shows carries on"
    out = capsys.readouterr().out
    assert "cannot be saved" in out and "folder" in out and " 1. " in out, out
    with pytest.raises(CourseError) as e:
        course().goto(1)
    assert e.value.code == 1 and "folder" in str(e.value) and "\n" not in str(e.value)
    assert (repo / "progress.json" / "mine.txt").read_text() == "my notes"


def test_a_read_only_folder_warns_a_show_and_stops_a_save(repo, course, capsys, monkeypatch):
    def refused(*args, **kwargs):  # as in a read-only folder (chmod does not stop root, so it is simulated)
        raise PermissionError(errno.EACCES, "Permission denied", str(repo / "progress.json.tmp1234"))

    monkeypatch.setattr(state.tempfile, "mkstemp", refused)
    assert course().list() == 0
    out = capsys.readouterr().out
    assert "cannot be saved" in out and str(repo) in out, out
    with pytest.raises(CourseError) as e:
        course().quiz(1, answers(repo, 1))
    assert e.value.code == 1 and "cannot be saved" in str(e.value) and "\n" not in str(e.value)


# -- two commands at once ------------------------------------------------------------------------------------

def test_two_commands_at_once_keep_both_changes(repo, course):
    write(repo, current=2, unlocked=2, passed=[1], quiz={"3": {"score": 1, "total": 4}})
    first, second = course(), course()
    assert first.progress == second.progress  # both read the file before either saves
    first.progress.quiz["1"] = {"score": 2, "total": questions(repo, 1)}
    first.progress.saw_hint(2, "test_a")
    first.save()
    second.progress.quiz["2"] = {"score": 1, "total": questions(repo, 2)}
    second.progress.record(2, True)
    second.progress.saw_hint(2, "test_b")
    second.save()
    saved = state.load(repo)
    assert sorted(saved.quiz) == ["1", "2", "3"], saved.quiz
    assert saved.passed == [1, 2] and saved.hints == {"2": {"test_a": 1, "test_b": 1}}
    assert second.progress == saved, "the command that saved last sees both changes"


def test_ten_quizzes_at_once_keep_every_result(repo):
    write(repo)
    procs = [subprocess.Popen([sys.executable, "course.py", "--lang", "en", "quiz", str(n), "--answers",
                               answers(repo, n)], cwd=repo, env=course_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for n in range(1, 11)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    quiz = json.loads((repo / "progress.json").read_text())["quiz"]
    assert sorted(quiz, key=int) == [str(n) for n in range(1, 11)], "a result was lost"
    assert all(quiz[str(n)]["total"] == questions(repo, n) for n in range(1, 11))


# -- reset keeps every file, or changes nothing --------------------------------------------------------------

def test_reset_all_changes_nothing_when_a_backup_cannot_be_written(repo, course, monkeypatch):
    write(repo)
    mine = {}
    for s in steps.all_steps()[:3]:
        mine[s.exercise(repo)] = f"# my attempt at {s.module}\n"
        s.exercise(repo).write_text(mine[s.exercise(repo)])
    made = []

    def open_in_backups(path, mode="r", *args, **kwargs):
        if "x" in mode:
            made.append(path)
            if len(made) == 2:  # the second backup: the disk is full, or backups/ became read-only
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(commands, "open", open_in_backups, raising=False)
    monkeypatch.setattr(t, "lang", "pl")
    with pytest.raises(CourseError) as e:
        course().reset(None, everything=True, yes=True)
    assert e.value.code == 1 and "backups/" in str(e.value) and "nic nie zmieniono" in str(e.value), str(e.value)
    assert all(path.read_text() == text for path, text in mine.items()), "a file was replaced without its backup"


# -- end to end: the real command line -----------------------------------------------------------------------

def test_course_py_rebuilds_a_step_beyond_the_last(repo):
    write(repo, current=N + 1, unlocked=N + 1)
    out = run_course(repo, "list")
    assert out.returncode == 0 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
    assert f"current step {N + 1} is not a step of this course" in out.stdout, out.stdout
    assert json.loads((repo / "progress.json").read_text())["current"] == 1
    assert json.loads((repo / "progress.json.unreadable").read_text())["current"] == N + 1


def test_course_py_with_a_folder_for_progress_stops_in_one_sentence(repo):
    (repo / "progress.json").mkdir()
    out = run_course(repo, "quiz", "1", "--answers", answers(repo, 1))
    assert out.returncode == 1 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "progress.json is a folder" in out.stderr, out.stderr
    assert (repo / "progress.json").is_dir()


def chmod_stops_writes(folder) -> bool:
    """False for root (and on Windows), whom a read-only folder does not stop."""
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
    (folder / "probe").unlink()
    return False


def test_course_py_in_a_read_only_folder(repo):
    if not chmod_stops_writes(repo):
        pytest.skip("a read-only folder does not stop this user (root), so the test above simulates it")
    write(repo)
    os.chmod(repo, 0o555)
    try:
        out = run_course(repo, "list")
        assert out.returncode == 0 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
        out = run_course(repo, "quiz", "1", "--answers", answers(repo, 1))
        assert out.returncode == 1 and TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
        assert "cannot be saved" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    finally:
        os.chmod(repo, 0o755)
