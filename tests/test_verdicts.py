"""What `course.py check` says when the learner's code does not just fail a check but ends, hangs or breaks
the process running the checks: each case is a broken step 6 in a private copy of the repository, and the
test reads what a person sees."""

import re
import shutil
import signal

import pytest
from course_helpers import run_course

pytestmark = pytest.mark.timeout(120)

STEP6 = "exercises/step06_feedforward.py"
TRACEBACK = "Traceback (most recent call last)"
GELU_BODY = '    return F.gelu(x, approximate="tanh")'


def broken_gelu(repo, *lines: str) -> None:
    """The reference step 6 with `lines` run inside gelu(), before its return."""
    code = (repo / "solutions" / "step06_feedforward.py").read_text(encoding="utf-8")
    assert GELU_BODY in code
    inserted = "".join(f"    {line}\n" for line in lines)
    (repo / STEP6).write_text(code.replace(GELU_BODY, inserted + GELU_BODY, 1), encoding="utf-8")


def check6(repo):
    out = run_course(repo, "check", "6", "--all", COURSE_CHECK_TIMEOUT="2")
    assert out.returncode == 1, out.stdout + out.stderr
    assert TRACEBACK not in out.stdout + out.stderr, out.stdout + out.stderr
    return out.stdout


def first_failure(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.lstrip().startswith("✗"))


def reasons_in_process(repo, tmp_path) -> list[str]:
    """The failing checks' sentences for the broken step 6, with the checks run in this process: the same
    words `course.py check` prints, for the mistakes that leave the process alive."""
    from kata.checking import run_in_process
    from kata.steps import ROOT

    package = tmp_path / "broken_step06"
    shutil.copytree(repo / "solutions", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(repo / STEP6, package / "step06_feedforward.py")
    results = run_in_process([ROOT / "checks" / "test_step06_feedforward.py"], str(package), package)
    return [r.reason for r in results if r.outcome == "failed"]


@pytest.mark.parametrize("lines, how", [
    (["import os", "os._exit(3)"], "(exit code 3)"),
    (["import os, signal", "os.kill(os.getpid(), signal.SIGKILL)"], "(killed by SIGKILL)"),
    (["import ctypes", "ctypes.string_at(0)"], "a segmentation fault, SIGSEGV"),
], ids=["os._exit", "SIGKILL", "segfault"])
def test_a_process_that_ends_names_the_check_and_the_function_it_was_in(repo, lines, how):
    if how.startswith("a segmentation") and not hasattr(signal, "SIGSEGV"):
        pytest.skip("no SIGSEGV here")
    broken_gelu(repo, *lines)
    stdout = check6(repo)
    first = first_failure(stdout)
    assert "the process ended inside `gelu()`" in first and STEP6 in first and how in first, stdout
    not_run = [line for line in stdout.splitlines() if "not run" in line]
    assert not_run and all("the process ended during" in line for line in not_run), stdout
    assert "an earlier check was stopped" not in stdout


def test_code_that_ignores_the_alarm_is_stopped_from_outside_and_named(repo):
    broken_gelu(repo, "import signal", "signal.signal(signal.SIGALRM, signal.SIG_IGN)", "while True:", "    pass")
    stdout = check6(repo)
    first = first_failure(stdout)
    assert re.search(r"stopped after 2 s inside `gelu\(\)` \(exercises/step06_feedforward\.py, line \d+\)", first), stdout
    assert "loop that never ends" in first
    assert any("ran too long" in line for line in stdout.splitlines() if "not run" in line), stdout


def test_sys_exit_at_import_is_named_in_every_check(repo):
    code = (repo / "solutions" / "step06_feedforward.py").read_text(encoding="utf-8")
    (repo / STEP6).write_text("import sys\n" + code.replace("\nimport torch\n", "\nsys.exit()\nimport torch\n", 1),
                              encoding="utf-8")
    stdout = check6(repo)
    failures = [line for line in stdout.splitlines() if line.lstrip().startswith("✗")]
    assert failures and all("exits when it is imported: `sys.exit()` on line" in line for line in failures), stdout
    assert "assertion" not in stdout.lower()


def test_sys_exit_inside_a_function_is_named(repo, tmp_path):
    broken_gelu(repo, "import sys", "sys.exit()")
    first = reasons_in_process(repo, tmp_path)[0]
    assert "`sys.exit()` in `gelu()`" in first and "ends the program" in first, first


@pytest.mark.parametrize("encode, said", [
    (lambda text: text.encode("utf-16"), "is not UTF-8 text: it looks like UTF-16; save it as UTF-8"),
    (lambda text: text.encode().replace(b"import torch\n", b"import torch\0\n", 1), "holds a NUL byte"),
    (lambda text: text.replace("Step 6:", "Step 6 é:", 1).encode("latin-1"), "byte 0xe9 on line 1 is not UTF-8"),
], ids=["utf-16", "NUL", "latin-1"])
def test_a_step_file_that_is_not_utf8_gets_a_sentence(repo, tmp_path, encode, said):
    code = (repo / "solutions" / "step06_feedforward.py").read_text(encoding="utf-8")
    (repo / STEP6).write_bytes(encode(code))
    reasons = reasons_in_process(repo, tmp_path)
    assert reasons and all(said in r and "is not UTF-8 text" in r for r in reasons), reasons
    assert not any("line None" in r for r in reasons)


def test_endless_recursion_names_the_function_that_calls_itself(repo, tmp_path):
    broken_gelu(repo, "return gelu(x)")
    first = reasons_in_process(repo, tmp_path)[0]
    assert "`gelu()` calls itself again and again without end" in first, first


def test_code_that_deletes_a_torch_function_is_told_and_torch_is_put_back(repo):
    # Only the first call deletes it: the checks after that one must pass again, torch being restored. Through
    # course.py: in this process the checks' torch is the suite's own.
    broken_gelu(repo, "if not getattr(torch, '_course_test_seen', False):",
                "    torch._course_test_seen = True",
                "    del torch.allclose")
    stdout = check6(repo)
    failures = [line for line in stdout.splitlines() if line.lstrip().startswith("✗")]
    assert len(failures) == 1, stdout
    assert "your code deleted `torch.allclose`, which belongs to PyTorch" in failures[0], stdout
