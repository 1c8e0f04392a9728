"""Step 11: your own model.

Steps 1 to 10 built every part. This step joins them on a text of your choosing: train a tokenizer on it
(step 1), store it as a compact array and split it (step 2), train a GPT on it (steps 8 and 9), and keep the
result in a checkpoint, one folder with everything needed to use the model again later (step 10 talks to it):

    checkpoint/model.pt        the weights: the model's state dict, names -> tensors
    checkpoint/config.json     the recipe: the GPTConfig the weights belong to
    checkpoint/tokenizer.json  the tokenizer: the same text must become the same ids
    checkpoint/train_state.pt  (optional) what resuming the training needs: the optimizer's state, the epoch
"""

import glob
import json
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from .step01_tokenizer import Tokenizer
from .step02_data import as_token_array, train_val_split
from .step08_gpt import GPT, GPTConfig
from .step09_training import TrainConfig, train  # noqa: F401  (with generate: for the checks, course.py, the demo)
from .step10_generation import generate  # noqa: F401

CHECKPOINT_FORMAT = "write-transformer-gpt"  # config.json says what wrote it, so a stray file is told apart
CHECKPOINT_VERSION = 1
MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, STATE_FILE = "model.pt", "config.json", "tokenizer.json", "train_state.pt"


def prepare_data(text: str, vocab_size: int, val_fraction: float = 0.1) -> tuple[Tokenizer, np.ndarray, np.ndarray]:
    """Text -> (tokenizer trained on it, training tokens, validation tokens).

    "the cat sat on the mat. " * 50, vocab_size=260 -> a tokenizer of 260 tokens and the text's ids, about
    90% of them (the start) for training and 10% (the end) for validation, as uint16 arrays.
    """
    # TODO: a new Tokenizer(), trained on text to vocab_size (step 1); encode the whole text and make it a
    #   compact array with as_token_array(ids, tokenizer.vocab_size); split it with train_val_split(data,
    #   val_fraction) (both step 2). Return (tokenizer, train_data, val_data).
    raise NotImplementedError


def write_checkpoint(folder: Path, model: GPT, tokenizer: Tokenizer, extra: dict | None = None) -> None:
    """Write the checkpoint's files into `folder`, an empty directory that already exists.

    model.pt: torch.save(model.state_dict()). Only tensors, so torch.load(..., weights_only=True) can read it
    without running any code from the file (saving the model object itself would pickle its classes).
    config.json: {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "block_size": 64, ...}, the
    fields of model.config. tokenizer.json: tokenizer.save. train_state.pt: torch.save(extra), only when given.
    """
    # TODO: four writes, each into folder / its file name (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, STATE_FILE):
    #   1. torch.save(model.state_dict(), ...)
    #   2. a dict {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **asdict(model.config)}, written
    #      with json.dumps(..., indent=2) and Path.write_text(..., encoding="utf-8")
    #   3. tokenizer.save(...)    4. only if extra is not None: torch.save(extra, ...)
    raise NotImplementedError


def restore_model(config: GPTConfig, state_dict: dict[str, torch.Tensor]) -> GPT:
    """The model `config` describes, holding the weights of state_dict, in eval mode (ready to generate).

    GPTConfig(n_layer=2, ...) and the state dict of such a model -> that very model, same logits to the bit.
    GPTConfig(n_layer=1, ...) and a 2-layer state dict -> RuntimeError: "Unexpected key(s): transformer.h.1..."
    """
    # TODO: build GPT(config): its weights are random, but of the right shapes. Replace them all with
    #   model.load_state_dict(state_dict) (strict, the default: every name must match). Return the model
    #   in eval mode.
    raise NotImplementedError


# Given: writing a folder so that it is never half-written, and reading one back with a clear message for
# every way it can be wrong. Nothing to write below this line.

def save_checkpoint(directory, model: GPT, tokenizer: Tokenizer, extra: dict | None = None) -> None:
    """Save a checkpoint into `directory`, atomically: the previous checkpoint there survives until the new
    one is complete, and an interruption (Ctrl+C, a crash) never leaves a half-written folder."""
    with atomic_directory(directory) as folder:
        write_checkpoint(folder, model, tokenizer, extra)


def load_checkpoint(directory, device="cpu") -> tuple[GPT, Tokenizer, dict]:
    """(model in eval mode on `device`, tokenizer, extra or {}) from a folder written by save_checkpoint.

    Anything wrong with the folder -> ValueError, in one sentence that says what to do.
    """
    path = Path(directory)
    recover_interrupted_save(path)
    names = (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE)
    if not path.is_dir() or not any((path / name).exists() for name in names):
        raise ValueError(f"no checkpoint in {path}/: train one with `python course.py train`")
    for name in names:
        if not (path / name).is_file():
            raise ValueError(f"the checkpoint in {path}/ is incomplete ({name} is missing): train again with "
                             f"`python course.py train`")
    config = read_config(path / CONFIG_FILE)
    state_dict = read_tensors(path / MODEL_FILE)
    try:
        model = restore_model(config, state_dict).to(device)
    except RuntimeError:
        check_weights_fit(config, state_dict, path)  # a mismatch gets a clear message...
        raise  # ...anything else is shown as it is
    tokenizer = Tokenizer.load(path / TOKENIZER_FILE)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{path / TOKENIZER_FILE} has {tokenizer.vocab_size} tokens but {path / CONFIG_FILE} says "
                         f"vocab_size={config.vocab_size}: they come from different trainings")
    extra = read_tensors(path / STATE_FILE, device) if (path / STATE_FILE).is_file() else {}
    return model, tokenizer, extra


def read_config(path: Path) -> GPTConfig:
    """The GPTConfig stored in config.json; ValueError if the file is not one that write_checkpoint wrote."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not valid JSON: the checkpoint is damaged; train again") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint's config: it has no \"format\": \"{CHECKPOINT_FORMAT}\"")
    if data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is of version {data.get('version')!r}; this code reads version {CHECKPOINT_VERSION}")
    settings = {key: value for key, value in data.items() if key not in ("format", "version")}
    known = {f.name for f in fields(GPTConfig)}
    if set(settings) != known:
        odd = sorted(set(settings) ^ known)
        raise ValueError(f"{path} does not describe a GPTConfig: missing or unknown fields {odd}")
    return GPTConfig(**settings)


def read_tensors(path: Path, device="cpu") -> dict:
    """A dict saved with torch.save, read with weights_only=True (tensors and plain values only, no code)."""
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a truncated or foreign file fails in many ways: zip, pickle, end of file...
        raise ValueError(f"{path} cannot be read ({type(error).__name__}): the file is corrupt or is not a "
                         f"state dict saved with torch.save; train again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a dict: save model.state_dict(), not the model")
    return data


def check_weights_fit(config: GPTConfig, state_dict: dict, path: Path) -> None:
    """ValueError naming the first difference between state_dict and GPT(config)'s names and shapes."""
    expected = {name: tuple(t.shape) for name, t in GPT(config).state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state_dict.items() if isinstance(t, torch.Tensor)}
    problems = [f"{name} is missing" for name in expected if name not in found]
    problems += [f"{name} is not part of this model" for name in state_dict if name not in expected]
    problems += [f"{name} has shape {found[name]}, the config needs {shape}"
                 for name, shape in expected.items() if name in found and found[name] != shape]
    if problems:
        raise ValueError(f"{path / CONFIG_FILE} does not match the weights in {path / MODEL_FILE}: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


@contextmanager
def atomic_directory(directory):
    """Yield a new empty folder beside `directory`; when the block ends without an error, it replaces
    `directory` in two renames. On an error (Ctrl+C included) it is deleted and `directory` is untouched.

    The new folder, .NAME.<random hex>.tmp, holds a marker file (MARKER_FILE) until it takes its place, so
    that a save killed while writing leaves a folder provably the course's own. Nothing is ever deleted that
    is_checkpoint_folder does not accept: a user's folder that happens to be called NAME.old or .NAME.x.tmp
    is left as it is (ValueError where it stands in the way)."""
    path = Path(directory)
    recover_interrupted_save(path)
    if path.exists() and not is_checkpoint_folder(path):
        raise ValueError(f"{path} exists and is not a checkpoint folder: choose another place to save")
    old = path.with_name(path.name + ".old")
    if path.exists() and (old.exists() or old.is_symlink()):
        raise ValueError(f"{old} was left as it is because it holds files that are not a checkpoint's: move it "
                         f"away so that {path} can be replaced")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if is_checkpoint_folder(stale):  # left by a save that was killed while writing
            shutil.rmtree(stale, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    folder.mkdir()  # unlike tempfile.mkdtemp, with the user's usual permissions
    (folder / MARKER_FILE).write_text(MARKER_TEXT, encoding="utf-8")
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # made by this very call: ours
        raise
    (folder / MARKER_FILE).unlink()  # a checkpoint holds its own files only; config.json says what wrote it
    moved = path.exists()
    if moved:
        path.rename(old)  # 1. the previous checkpoint steps aside...
    folder.rename(path)  # 2. ...the new one takes its place (a rename is all or nothing)...
    if moved and is_checkpoint_folder(old):
        shutil.rmtree(old, ignore_errors=True)  # 3. ...and only then is the previous one deleted


def recover_interrupted_save(path: Path) -> None:
    """Finish what a save interrupted between its renames left: `path.old` without `path` is the previous
    checkpoint, put back; `path.old` beside a checkpoint `path` is one whose deletion was missed. A `path.old`
    that is_checkpoint_folder does not accept is someone else's: it is left as it is."""
    old = path.with_name(path.name + ".old")
    if not is_checkpoint_folder(old):
        return
    if not path.exists() and not path.is_symlink():
        old.rename(path)
    elif is_checkpoint_folder(path):
        shutil.rmtree(old, ignore_errors=True)


MARKER_FILE = ".write-transformer-checkpoint"
MARKER_TEXT = "A folder written by write-transformer's save_checkpoint.\n"
LITTER = {".DS_Store", "desktop.ini", "Thumbs.db"}  # what file browsers leave in a folder they show


def is_checkpoint_folder(path: Path) -> bool:
    """A folder that is provably the course's own, so that replacing or deleting it loses nothing else: a
    real folder (not a link) of plain files, each one a checkpoint's (model.pt, config.json, tokenizer.json,
    train_state.pt, the marker) or left by a file browser (.DS_Store, desktop.ini, Thumbs.db), and holding
    the marker, or a config.json whose "format" is CHECKPOINT_FORMAT (every checkpoint, older ones included),
    or nothing at all. One unknown file, or a subfolder, and it is not."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    ours = {MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, STATE_FILE, MARKER_FILE} | LITTER
    children = list(path.iterdir())
    if any(child.name not in ours or child.is_symlink() or not child.is_file() for child in children):
        return False
    if not any(child.name not in LITTER for child in children):
        return True  # empty, but for a file browser's litter
    try:
        if (path / MARKER_FILE).is_file():
            return (path / MARKER_FILE).read_text(encoding="utf-8") == MARKER_TEXT
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT
