"""Which implementation the checks run against: the one switch of this course.

    pytest                  checks/ against exercises/   (your code)
    pytest --solutions      checks/ against solutions/   (the reference), plus tests/ of the course itself

Every check gets its step's module from the `step` fixture below: checks/test_step04_attention.py receives
exercises/step04_attention.py, or solutions/step04_attention.py under --solutions. An implementation is one
package whose later steps import the earlier ones relatively (`from .step07_block import Block`), so under
--solutions the whole model is the reference's, and without it the whole model is yours.

`--impl PACKAGE` points the checks at any other package laid out like exercises/: a dotted name
(`kata.stubs`, the pristine stubs) or a folder. The course's self-check uses it to prove that every check
fails on the stubs and that wrong implementations are caught.
"""

import importlib
import os
import sys
from pathlib import Path

# The checks use tiny tensors, where a second thread costs more than it saves; set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from hypothesis import Phase, settings

ROOT = Path(__file__).resolve().parent

# Checks must give the same verdict on every run and write nothing into your working tree. No "explain" phase:
# it takes seconds on a failing check and the shrunk example already says what went wrong.
settings.register_profile("course", database=None, deadline=None, derandomize=True, print_blob=False,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
settings.load_profile("course")


def pytest_addoption(parser):
    group = parser.getgroup("write-transformer")
    group.addoption("--solutions", action="store_true",
                    help="run the checks against solutions/ (the reference) instead of exercises/ (your code)")
    group.addoption("--impl", metavar="PACKAGE",
                    help="run the checks against another package laid out like exercises/ (dotted name or folder)")
    group.addoption("--mutants", choices=("sample", "all"), default="sample",
                    help="the self-check's mutants: a fixed quarter of each step's (default, fast) or all of them")


def implementation_package(config) -> str:
    """The name of the package the checks import: exercises, solutions, or what --impl names."""
    impl = config.getoption("--impl")
    if impl is None:
        return "solutions" if config.getoption("--solutions") else "exercises"
    folder = Path(impl)
    if folder.is_dir():
        parent = str(folder.resolve().parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
        return folder.name
    return impl


def pytest_ignore_collect(collection_path, config):
    # tests/ holds the course's own tests: they run with the reference (`pytest --solutions`), or when named.
    if collection_path == ROOT / "tests" and not config.getoption("--solutions"):
        named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
        if not any(path == collection_path or collection_path in path.parents for path in named):
            return True
    return None


@pytest.fixture(scope="module")
def step(request):
    """The module under test, named after the check file: test_step04_attention.py -> step04_attention."""
    from kata.steps import module_of_check_file

    name = module_of_check_file(request.module.__file__)
    return importlib.import_module(f"{implementation_package(request.config)}.{name}")
