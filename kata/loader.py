"""What the direct modes (train, chat) load before they run: the steps' code, the device, a checkpoint, a text.

The steps come as one typed object, `Steps`, from exercises/ (the learner's code) or solutions/ (the
reference); `whose_code` decides which and says so. Everything a person gives (a device name, a checkpoint
folder, a text file) is checked here, and a mistake in it becomes one sentence (UserError).
"""

import importlib
import json
import math
import os
import stat
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
MAX_MEMORY = 8 * 2**30  # the most memory a model may ask for: more is a typo, or a machine the course is not for
MAX_SEED = 2**32 - 1
CODE_FOLDERS = ("exercises", "solutions", "kata", "checks", "tests", "lessons", "data", ".git")


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


def checkpoint_folder(value: str) -> Path:
    """--checkpoint as a folder of its own; UserError for a value that cannot be one (nothing is touched).

    "" , ".", "..", "/" name no folder of their own; the repository, a folder holding it and the course's own
    folders (exercises/, solutions/, ...) hold files a save must never replace; a file is not a folder.
    """
    if not value.strip():
        raise UserError("--checkpoint is empty: name a folder, such as --checkpoint checkpoint")
    path = Path(value)
    resolved = path.resolve()
    if path.name in ("", ".", "..") or resolved == resolved.parent:
        raise UserError(f"--checkpoint {value} names no folder of its own: give one, such as --checkpoint "
                        f"checkpoint")
    if resolved == ROOT or ROOT.is_relative_to(resolved) or any(
            resolved.is_relative_to(ROOT / name) for name in CODE_FOLDERS):
        raise UserError(f"--checkpoint {value} is one of the course's own folders: save into a folder of its "
                        f"own, such as --checkpoint checkpoint")
    if path.exists() and not path.is_dir():
        raise UserError(f"--checkpoint {value} is a file, not a folder: name a folder (train makes it)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--checkpoint {value} lies inside {parent}, which is a file, not a folder")
            break
    return path


def load_model(steps: Steps, directory, device: str, training: bool = False):
    """(model, tokenizer, extra) from a checkpoint folder, through step 11; anything wrong -> UserError.

    What step 11 would build is checked here first, so that it holds whoever wrote step 11: config.json's
    sizes and the memory they need, tokenizer.json's merges, the files' sizes. Once loaded, the weights must
    be finite numbers and, for `training`, train_state.pt must hold a training state that train writes.
    """
    directory = Path(directory)
    _check_files(directory)
    try:
        with warnings.catch_warnings():  # a damaged file is one sentence, not a library's warning before it
            warnings.simplefilter("ignore")
            model, tokenizer, extra = steps.checkpoint.load_checkpoint(directory, device=device)
    except (ValueError, OSError) as e:
        raise UserError(str(e)) from None
    _check_finite(model, directory / "model.pt")
    if training:
        _check_train_state(extra, directory / "train_state.pt")
    return model, tokenizer, extra


SIZES = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "d_ff")  # GPTConfig's whole numbers


def _check_files(directory: Path) -> None:
    config_file = directory / "config.json"
    config = _read_json(config_file, 1_000_000)
    if not isinstance(config, dict) or "format" not in config:
        return  # not a config at all: step 11 says so
    check_config(config, f"{config_file} is damaged")
    weights = 4 * model_memory(config)[0]
    _check_file_size(directory / "model.pt", 2 * weights + 2**20)
    _check_file_size(directory / "train_state.pt", 4 * weights + 2**20)  # Adam keeps two numbers a weight
    tokenizer = _read_json(directory / "tokenizer.json", 200_000_000)
    merges = tokenizer.get("merges") if isinstance(tokenizer, dict) else None
    seen: dict[tuple, int] = {}
    for i, pair in enumerate(merges if isinstance(merges, list) else []):
        if not (isinstance(pair, list) and all(type(t) is int for t in pair)):
            return  # step 1's read_tokenizer_file names a malformed merge
        if tuple(pair) in seen:  # loaded, the second would replace the first: the vocabulary no longer saves
            raise UserError(f"{directory / 'tokenizer.json'} is damaged: merge {i} repeats merge {seen[tuple(pair)]} "
                            f"({pair}); train again")
        seen[tuple(pair)] = i


def _read_json(path: Path, limit: int):
    """The JSON in `path`, or None where step 11 has its own message (a missing or unreadable file)."""
    if not path.is_file():
        return None
    _check_file_size(path, limit)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _check_file_size(path: Path, limit: float) -> None:
    if path.is_file() and path.stat().st_size > limit:
        raise UserError(f"{path} is {_size(path.stat().st_size)}, far more than the checkpoint it belongs to "
                        f"needs: it is not a file that train wrote; train again")


def check_config(config: dict, problem: str) -> None:
    """UserError, starting with `problem`, for a config no GPT can be built from (before anything is built)."""
    for key in (*SIZES, "dropout", "bias"):
        if key not in config:
            raise UserError(f"{problem}: it has no {key}; train again")
    for key in SIZES:
        value = config[key]
        if type(value) is not int or value < 1:
            raise UserError(f"{problem}: {key} must be a whole number of at least 1, got {_short(value)}; "
                            f"train again")
    dropout = config["dropout"]
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise UserError(f"{problem}: dropout must be a number from 0 to below 1, got {_short(dropout)}; train again")
    if type(config["bias"]) is not bool:
        raise UserError(f"{problem}: bias must be true or false, got {_short(config['bias'])}; train again")
    if config["vocab_size"] < 256:
        raise UserError(f"{problem}: vocab_size must be at least 256 (one token per byte), got "
                        f"{config['vocab_size']}; train again")
    if config["n_embd"] % config["n_head"]:
        raise UserError(f"{problem}: n_embd {config['n_embd']} is not divisible by n_head {config['n_head']}; "
                        f"train again")
    check_memory(config, problem.replace(" is damaged", " describes a model too large for this machine"),
                 fix="it needs a machine with more memory")


def model_memory(config: dict, batch_size: int | None = None) -> tuple[int, int]:
    """(parameters, bytes of memory) of the GPT that `config` describes, counted before it is built.

    Generating: the float32 weights, the KV cache and one full context's attention and logits. Training
    (batch_size given): four numbers a weight (it, its gradient, Adam's two) and a batch's activations.
    """
    C, V, T, F, L, H = (config[k] for k in ("n_embd", "vocab_size", "block_size", "d_ff", "n_layer", "n_head"))
    b = 1 if config.get("bias", True) else 0
    block = (2 + 2 * b) * C + (4 * C * C + 4 * b * C) + (2 * C * F + b * (F + C))  # LayerNorms, attention, MLP
    params = V * C + T * C + L * block + (1 + b) * C  # lm_head shares wte's weights
    if batch_size is None:
        return params, 4 * (params + 2 * L * T * C + H * T * T + T * V)
    return params, 4 * (4 * params + batch_size * (L * (2 * H * T * T + T * (12 * C + 2 * F)) + 2 * T * V))


def check_memory(config: dict, problem: str = "", batch_size: int | None = None, fix: str = "make it smaller") -> None:
    """UserError when the model would need more memory than this machine has (or, unknown, MAX_MEMORY)."""
    params, need = model_memory(config, batch_size)
    have = _machine_memory()
    if need > have:
        settings = ", ".join(f"{k} {config[k]:,}" for k in ("n_layer", "n_embd", "d_ff", "block_size", "vocab_size"))
        raise UserError(f"{problem + ': ' if problem else ''}a model of {settings} has {params:,} parameters and "
                        f"would need about {_size(need)} of memory{' to train' if batch_size else ''}, more than "
                        f"the {_size(have)} this machine has: {fix}")


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every system (Windows)
        return MAX_MEMORY


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_finite(model, path: Path) -> None:
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path} holds weights that are NaN or infinite ({name}), so the model cannot "
                            f"generate or train: train again")


def _check_train_state(extra: dict, path: Path) -> None:
    """UserError for a train_state.pt whose epoch or best loss is not one train saved."""
    epoch, best = extra.get("epoch", -1), extra.get("best_val_loss", math.inf)
    if type(epoch) is not int or epoch < -1:
        raise UserError(f"{path} is damaged: its epoch must be a whole number of 0 or more, got {_short(epoch)}; "
                        f"train again without --resume")
    if type(best) not in (int, float) or not 0 <= best <= math.inf or (best == math.inf and "epoch" in extra):
        raise UserError(f"{path} is damaged: its best validation loss must be a number of 0 or more, got "
                        f"{_short(best)}; train again without --resume")
    optimizer = extra.get("optimizer")
    if optimizer is not None and not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
                                      and isinstance(optimizer.get("param_groups"), list)):
        raise UserError(f"{path} is damaged: its optimizer is not an optimizer's state_dict(); train again "
                        f"without --resume")


def load_optimizer_state(optimizer, state: dict, path: Path) -> None:
    """optimizer.load_state_dict(state), once state is shown to be this optimizer's, for this very model."""
    import torch

    def refuse(why: str):
        raise UserError(f"{path} does not fit this model's optimizer: {why}; train again without --resume")

    ours = optimizer.param_groups
    groups = state["param_groups"]
    if len(groups) != len(ours):
        refuse(f"it has {len(groups)} parameter group{'' if len(groups) == 1 else 's'}, and the optimizer {len(ours)}")
    saved: dict = {}  # the saved id of each parameter -> the parameter it stands for
    for group, mine in zip(groups, ours):
        if not (isinstance(group, dict) and isinstance(group.get("params"), list)
                and len(group["params"]) == len(mine["params"])):
            refuse("a parameter group holds a different number of parameters")
        for key, value in group.items():
            if key != "params" and type(value) is float and not math.isfinite(value):
                refuse(f"its {key} is {value}")
        try:
            saved.update(zip(group["params"], mine["params"]))
        except TypeError:
            refuse("a parameter's id is not a number")
    for key, entry in state["state"].items():
        if key not in saved or not isinstance(entry, dict):
            refuse(f"it keeps a state for a parameter {_short(key)} that the model does not have")
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                continue
            if name != "step" and value.shape != saved[key].shape:
                refuse(f"its {name} of parameter {key} has shape {tuple(value.shape)}, the parameter "
                       f"{tuple(saved[key].shape)}")
            if value.is_floating_point() and not torch.isfinite(value).all():
                refuse(f"its {name} of parameter {key} holds NaN or infinite values")
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        refuse(str(e).rstrip("."))


def read_text(path: str | None, paste: bool, ui: UI, lang: str) -> tuple[str, str]:
    """(text, where it came from); UserError for a file that is not usable text."""
    if paste:
        if ui.interactive:
            ui.say("Paste your text, then press Ctrl+D on an empty line (Ctrl+Z and Enter on Windows):")
        data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
        source = "the pasted text"
    else:
        file = Path(path) if path else DEFAULT_CORPUS.get(lang, DEFAULT_CORPUS["en"])
        source = str(path) if path else f"the bundled corpus ({file.relative_to(ROOT).as_posix()})"
        data = _read_file(file, source)
    if len(data) > MAX_TEXT_BYTES:
        raise UserError(f"{source} is over {_size(MAX_TEXT_BYTES)}, more than the course trains on: use a part of it")
    return _decode(data, source, path), source


def _read_file(file: Path, source: str) -> bytes:
    """The bytes of a regular file: a pipe, a device or a folder would block, never end or cannot be read."""
    try:
        info = file.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{source}: no such file") from None
    except OSError as e:
        raise UserError(f"{source} cannot be read: {e.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{source} is a directory, not a text file")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{source} is not a regular file (it is a pipe, a device or a socket): save the text in a "
                        f"file, or pipe it into --paste")
    if info.st_size > MAX_TEXT_BYTES:
        raise UserError(f"{source} is {_size(info.st_size)}, more than the {_size(MAX_TEXT_BYTES)} the course trains "
                        f"on: use a part of it")
    try:
        with file.open("rb") as f:
            return f.read(MAX_TEXT_BYTES + 1)  # the file may have grown since
    except OSError as e:
        raise UserError(f"{source} cannot be read: {e.strerror}") from None


def _decode(data: bytes, source: str, path: str | None) -> str:
    """UTF-8 bytes -> text; other encodings are named, with how to convert them."""
    name = path or "in.txt"
    convert = f"{name} > {Path(name).stem}-utf8.txt"
    utf16 = _utf16(data)
    if utf16:
        raise UserError(f"{source} looks like UTF-16 text, and the course reads UTF-8: convert it, for example "
                        f"with iconv -f {utf16} -t UTF-8 {convert}")
    if b"\x00" in data[:65536]:
        raise UserError(f"{source} looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"{source} is not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start})"
        if _looks_one_byte(data):
            raise UserError(f"{where}: it looks like a one-byte encoding such as Latin-1 or Windows-1252; convert "
                            f"it, for example with iconv -f CP1252 -t UTF-8 {convert}") from None
        raise UserError(f"{where}; save it as UTF-8 and try again") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if not text.strip():
        raise UserError(f"{source} is empty")
    return text


def _utf16(data: bytes) -> str:
    """iconv's name for the UTF-16 that `data` is in, or "": a byte-order mark says so, and without one, a zero
    byte in every other place (as ASCII letters have in UTF-16) says which byte comes first."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    sample = data[:65536]
    pairs = len(sample) // 2
    even, odd = sample[0:2 * pairs:2].count(0), sample[1:2 * pairs:2].count(0)
    if pairs < 2 or min(even, odd) >= 0.05 * pairs or max(even, odd) <= 0.3 * pairs:
        return ""
    return "UTF-16BE" if even > odd else "UTF-16LE"


def _looks_one_byte(data: bytes) -> bool:
    """Mostly ASCII with a few single bytes above 127 that Windows-1252 reads as letters: a one-byte encoding."""
    sample = data[:65536]
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    high = sum(byte >= 0x80 for byte in sample)
    controls = sum(byte < 0x20 and byte not in b"\t\n\r\f" for byte in sample)
    return 0 < high < 0.3 * len(sample) and controls == 0


def parse_seed(value: str, what: str) -> int:
    """A seed from what a person typed; "1e3" is 1000. ValueError (starting with `what`) outside 0..MAX_SEED."""
    try:
        number = float(value) if any(c in value.lower() for c in ".e") else int(value)
    except ValueError:
        number = None
    if number is None or isinstance(number, float) and not (math.isfinite(number) and number.is_integer()) \
            or not 0 <= number <= MAX_SEED:
        raise ValueError(f"{what} must be a whole number from 0 to {MAX_SEED:,}, got {_short(value)}")
    return int(number)
