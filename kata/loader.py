"""What the direct modes (train, chat) load before they run: the steps' code, the device, a checkpoint, a text.

The steps come as one typed object, `Steps`, from exercises/ (the learner's code) or solutions/ (the
reference); `whose_code` decides which and says so. Everything a person gives (a device name, a checkpoint
folder, a text file) is checked here, and a mistake in it becomes one sentence (UserError).
"""

import importlib
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import UserError
from .steps import ROOT
from .ui import UI

DEFAULT_CORPUS = {"en": ROOT / "data" / "corpus_en.txt", "pl": ROOT / "data" / "corpus_pl.txt"}
MAX_TEXT_BYTES = 100_000_000  # a larger text would take hours of BPE training on a CPU


@dataclass(frozen=True)
class Steps:
    """The step modules the direct modes use, all from one package."""

    data: ModuleType        # step 2: token arrays, batches
    config: ModuleType      # step 3: GPTConfig
    gpt: ModuleType         # step 8: GPT
    training: ModuleType    # step 9: train, TrainConfig, configure_optimizer
    generation: ModuleType  # step 10: generate, generate_tokens
    checkpoint: ModuleType  # step 11: prepare_data, save and load a checkpoint
    mine: bool              # True: exercises/, False: solutions/


MODULES = {"data": "step02_data", "config": "step03_embeddings", "gpt": "step08_gpt",
           "training": "step09_training", "generation": "step10_generation", "checkpoint": "step11_own_model"}


def load_steps(mine: bool) -> Steps:
    """The step modules, from exercises/ (mine) or solutions/; a learner's file that does not import is named."""
    package = "exercises" if mine else "solutions"
    modules = {}
    for field, module in MODULES.items():
        try:
            modules[field] = importlib.import_module(f"{package}.{module}")
        except Exception as e:
            raise UserError(f"{package}/{module}.py cannot be imported ({type(e).__name__}: {e})") from None
    return Steps(**modules, mine=mine)


def add_code_choice(parser, verb: str) -> None:
    parser.add_argument("--mine", action="store_true",
                        help=f"{verb} with your own code in exercises/ (the default once every step passes)")
    parser.add_argument("--reference", action="store_true",
                        help=f"{verb} with the reference in solutions/ (the default until every step passes)")


def whose_code(args, ui: UI) -> bool:
    """True to run the learner's exercises/, False for the reference in solutions/; says which on screen, and why.

    --mine and --reference decide; otherwise the learner's code runs once every step it needs (all of them: the
    checkpoint code of step 11 imports the others) passed its last check, and the reference until then.
    """
    from . import state, steps as course_steps

    every = [s.number for s in course_steps.all_steps()]
    if getattr(args, "reference", False) and args.mine:
        raise UserError("give --mine or --reference, not both")
    if args.mine:
        ui.say("Using your code in exercises/ (--mine).")
        return True
    if getattr(args, "reference", False):
        ui.say("Using the reference code in solutions/ (--reference).")
        return False
    try:
        progress = state.load(ROOT)
    except state.ProgressError:
        progress = None
    passed = set(progress.passed) if progress else set()
    missing = [n for n in every if n not in passed]
    if not missing:
        ui.say("Using your code in exercises/: every step passes its checks (--reference runs solutions/).")
        return True
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    ui.say(f"Using the reference code in solutions/: your step{'s' if len(missing) > 1 else ''} {shown} "
           f"{'do' if len(missing) > 1 else 'does'} not pass yet (--mine runs yours anyway).")
    return False


@contextmanager
def learner_code(mine: bool):
    """Turn an unwritten function of the learner's into one sentence that names it."""
    try:
        yield
    except NotImplementedError as e:
        if not mine:
            raise
        raise UserError(f"{_learner_function(e)} is not written yet: finish that step, or run without --mine "
                        f"(the reference)") from None


def _learner_function(error: BaseException) -> str:
    tb = error.__traceback__
    found = "a step"
    while tb is not None:
        code = tb.tb_frame.f_code
        if "exercises" in Path(code.co_filename).parts:
            found = f"`{getattr(code, 'co_qualname', code.co_name)}()` in exercises/{Path(code.co_filename).name}"
        tb = tb.tb_next
    return found


def pick_device(name: str) -> str:
    """"auto" -> CUDA, then MPS, then "cpu"; a named device that is not there -> UserError."""
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if name not in ("cuda", "mps", "cpu"):
        raise UserError(f"--device must be auto, cuda, mps or cpu, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine")
    if name == "mps" and not mps:
        raise UserError("--device mps: MPS is not available on this machine")
    return name


@contextmanager
def one_thread():
    """Generating one token at a time is no faster on several threads, and much slower when a core is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_model(steps: Steps, directory: Path, device: str):
    """(model, tokenizer, extra) from a checkpoint folder, through step 11; anything wrong -> UserError."""
    try:
        with warnings.catch_warnings():  # a damaged file is one sentence, not a library's warning before it
            warnings.simplefilter("ignore")
            return steps.checkpoint.load_checkpoint(directory, device=device)
    except (ValueError, OSError) as e:
        raise UserError(str(e)) from None


def read_text(path: str | None, paste: bool, ui: UI, lang: str) -> tuple[str, str]:
    """(text, where it came from); UserError for a file that is not usable text."""
    if paste:
        if ui.interactive:
            ui.say("Paste your text, then press Ctrl+D on an empty line (Ctrl+Z and Enter on Windows):")
        data = sys.stdin.buffer.read()
        source = "the pasted text"
    else:
        file = Path(path) if path else DEFAULT_CORPUS.get(lang, DEFAULT_CORPUS["en"])
        source = str(path) if path else f"the bundled corpus ({file.relative_to(ROOT).as_posix()})"
        if not file.exists():
            raise UserError(f"{path}: no such file")
        if file.is_dir():
            raise UserError(f"{path} is a directory, not a text file")
        try:
            data = file.read_bytes()
        except OSError as e:
            raise UserError(f"{path} cannot be read: {e.strerror}") from None
    if b"\x00" in data[:65536]:
        raise UserError(f"{source} looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{source} is not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start}); "
                        f"save it as UTF-8 and try again") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if not text.strip():
        raise UserError(f"{source} is empty")
    return text, source
