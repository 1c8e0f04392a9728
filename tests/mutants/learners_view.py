"""What a learner sees when their code has one of the mistakes in tests/mutants/: `course.py check N` output.

    python tests/mutants/learners_view.py 4            # list step 4's mutants
    python tests/mutants/learners_view.py 4 2          # course.py check 4 with mutant 2 in exercises/

It copies the repository to a temporary folder, puts the reference in exercises/ (every step passes), applies
the mutant to the step's file there, and runs `python course.py check N` as a learner would.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    step = int(argv[0])
    with open(ROOT / "tests" / "mutants" / f"step{step:02d}.toml", "rb") as f:
        mutants = tomllib.load(f)["mutant"]
    if len(argv) == 1:
        for i, m in enumerate(mutants, start=1):
            print(f"{i:>3}. {m['name']}")
        return 0
    mutant = mutants[int(argv[1]) - 1]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "write-transformer"
        shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", "__pycache__", "progress.json*",
                                                                  "backups", "checkpoint*"))
        for solution in (repo / "solutions").glob("step*.py"):
            shutil.copyfile(solution, repo / "exercises" / solution.name)
        target = next((repo / "exercises").glob(f"step{step:02d}_*.py"))
        source = target.read_text(encoding="utf-8")
        assert source.count(mutant["find"]) == 1, f"the mutant's `find` text is not in {target.name} exactly once"
        target.write_text(source.replace(mutant["find"], mutant["replace"]), encoding="utf-8")
        print(f"$ python course.py check {step}        # with the mistake: {mutant['name']}")
        out = subprocess.run([sys.executable, "course.py", "check", str(step)], cwd=repo, text=True,
                             capture_output=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
        print(out.stdout + out.stderr, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
