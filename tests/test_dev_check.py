"""`python course.py dev check`, the maintainer's check: the course is whole, a missing part is named, and a
step added by following CONTRIBUTING.md is counted without any number to change in the code."""

import re
import shutil

from course_helpers import run_course


def test_the_course_is_whole(repo):
    out = run_course(repo, "dev", "check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"The course is whole: \d+ steps", out.stdout), out.stdout


def test_every_missing_or_stray_part_is_named(repo):
    (repo / "lessons/pl/step03.quiz.toml").unlink()
    (repo / "kata/demos/step05.py").unlink()
    toml = repo / "lessons/course.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[step.hints.en]\ntest_get_stats_counts_neighbouring_pairs",
        '[step.hints.en]\ntest_a_check_nobody_wrote = ["?"]\ntest_get_stats_counts_neighbouring_pairs', 1),
        encoding="utf-8")
    mutants = repo / "tests/mutants/step04.toml"
    first = mutants.read_text(encoding="utf-8").split("[[mutant]]")[1]
    mutants.write_text("[[mutant]]" + first, encoding="utf-8")
    checks = repo / "checks/test_step06_feedforward.py"
    checks.write_text(checks.read_text(encoding="utf-8") + "\n\ndef test_something_new(step):\n    assert True\n")
    (repo / "exercises/step07_block.py").write_text("# emptied\n")
    shutil.copyfile(repo / "solutions/step02_data.py", repo / "solutions/step99_orphan.py")

    out = run_course(repo, "dev", "check")
    assert out.returncode == 1, out.stdout
    expected = ["step 3: the quiz (pl) is missing: lessons/pl/step03.quiz.toml",
                "step 5: the demo is missing: kata/demos/step05.py",
                "step 1: hints in en for checks that do not exist: test_a_check_nobody_wrote",
                "step 4: 1 mutant in step04.toml; a step needs at least 2",
                "step 6: no hints in en for test_something_new", "step 6: no hints in pl for test_something_new",
                "step 7: exercises/step07_block.py and kata/stubs/step07_block.py differ",
                "solutions/step99_orphan.py belongs to no step"]
    for sentence in expected:
        assert sentence in out.stdout, f"{sentence!r} not said:\n{out.stdout}"
    assert "Traceback" not in out.stdout + out.stderr


def test_a_new_step_needs_no_number_changed_in_the_code(repo):
    """A twelfth step made as CONTRIBUTING.md says (its files and its entry in course.toml), and nothing else."""
    last = run_course(repo, "dev", "check").stdout
    n = int(re.search(r"whole: (\d+) steps", last).group(1))
    old, new = f"step{n:02d}", f"step{n + 1:02d}"
    module = next((repo / "solutions").glob(f"{old}_*.py")).stem
    new_module = f"{new}_encore"
    for folder in ("exercises", "solutions", "kata/stubs"):
        shutil.copyfile(repo / folder / f"{module}.py", repo / folder / f"{new_module}.py")
    shutil.copyfile(repo / f"checks/test_{module}.py", repo / f"checks/test_{new_module}.py")
    shutil.copyfile(repo / f"kata/demos/{old}.py", repo / f"kata/demos/{new}.py")
    shutil.copyfile(repo / f"tests/mutants/{old}.toml", repo / f"tests/mutants/{new}.toml")
    for lang in ("en", "pl"):
        for suffix in (".md", ".quiz.toml"):
            shutil.copyfile(repo / f"lessons/{lang}/{old}{suffix}", repo / f"lessons/{lang}/{new}{suffix}")
    toml = repo / "lessons/course.toml"
    text = toml.read_text(encoding="utf-8")
    block = "[[step]]" + text.rsplit("[[step]]", 1)[1]
    block = block.replace(f"number = {n}\n", f"number = {n + 1}\n", 1).replace(module, new_module)
    toml.write_text(text.rstrip() + "\n\n" + block, encoding="utf-8")

    out = run_course(repo, "dev", "check")
    assert out.returncode == 0 and f"whole: {n + 1} steps" in out.stdout, out.stdout
    listing = run_course(repo, "list").stdout
    assert re.search(rf"{n + 1}\. ", listing), listing
    assert f"{n + 1} test-first steps" in run_course(repo, "--help").stdout
    beyond = run_course(repo, "goto", str(n + 2))
    assert f"1 to {n + 1}" in beyond.stderr, beyond.stderr
