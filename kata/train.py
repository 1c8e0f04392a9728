"""`course.py train`: train a GPT on a text file (or pasted text) with the steps' own code.

Everything that learns is the steps' code: the tokenizer (step 1), batches (step 2), the GPT (steps 3-8), the
training loop (step 9), generation (step 10) and checkpoints (step 11), taken from solutions/ or, with --mine,
from your exercises/. This file only reads the text, checks the settings, shows progress and keeps the best
checkpoint safe.
"""

import argparse
import importlib
import math
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .steps import ROOT
from . import recipe
from .threads import choose_threads
from .ui import UI, count, escape

DEFAULT_CORPUS = {"en": ROOT / "data" / "corpus_en.txt", "pl": ROOT / "data" / "corpus_pl.txt"}


TrainError = UserError  # the name the direct modes use: bad input, one sentence, exit code 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="a UTF-8 text file (default: the bundled corpus)")
    parser.add_argument("--paste", action="store_true", help="read the text from standard input, ended by Ctrl+D")
    model = parser.add_argument_group("the model")
    model.add_argument("--d_model", "--n_embd", type=int, default=64, help="width of every token's vector (default 64)")
    model.add_argument("--n_heads", "--n_head", type=int, default=4, help="attention heads per block (default 4)")
    model.add_argument("--n_layers", "--n_layer", type=int, default=4, help="transformer blocks (default 4)")
    model.add_argument("--d_ff", type=int, default=256, help="hidden width of the feed-forward network (default 256)")
    model.add_argument("--block_size", type=int, default=None,
                       help="context length in tokens (default: sized from the text, 16 to 64)")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout probability while training (default 0)")
    model.add_argument("--bpe_vocab_size", type=int, default=512, help="tokens in the BPE vocabulary (default 512)")
    run = parser.add_argument_group("training")
    run.add_argument("--epochs", type=int, default=None,
                     help="passes over the training tokens (default: sized from the text, 300 to 3,000 steps)")
    run.add_argument("--batch_size", type=int, default=None, help="windows per step (default: 16, fewer on a short text)")
    run.add_argument("--lr", type=float, default=None,
                     help="peak learning rate (default: 3e-3 up to 128 wide, smaller for wider models)")
    run.add_argument("--seed", type=int, default=1337, help="the same seed gives the same run (default 1337)")
    run.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cuda, mps or cpu")
    run.add_argument("--threads", type=int, default=0,
                     help="CPU threads for training (default: the fastest in a short probe at the start)")
    run.add_argument("--checkpoint", default="checkpoint", metavar="DIR",
                     help="where the best model is saved (default checkpoint/)")
    run.add_argument("--resume", action="store_true", help="continue training the checkpoint in --checkpoint")
    add_code_choice(run, "train")


def add_code_choice(parser, verb: str) -> None:
    parser.add_argument("--mine", action="store_true",
                        help=f"{verb} with your own code in exercises/ (the default once every step passes)")
    parser.add_argument("--reference", action="store_true",
                        help=f"{verb} with the reference in solutions/ (the default until every step passes)")


def validate(args) -> None:
    """Refuse impossible settings before any work is done, in one sentence each."""
    positive = {"--epochs": args.epochs, "--d_model": args.d_model, "--n_heads": args.n_heads,
                "--n_layers": args.n_layers, "--d_ff": args.d_ff, "--block_size": args.block_size,
                "--batch_size": args.batch_size}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise TrainError(f"{flag} must be at least 1, got {value}")
    if args.d_model % args.n_heads:
        raise TrainError(f"--d_model {args.d_model} is not divisible by --n_heads {args.n_heads}: "
                         f"each head gets an equal slice of the vector (try --n_heads {_divisor(args.d_model)})")
    if args.bpe_vocab_size < 256:
        raise TrainError(f"--bpe_vocab_size must be at least 256 (one token per byte), got {args.bpe_vocab_size}")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise TrainError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.dropout < 1:
        raise TrainError(f"--dropout must be at least 0 and below 1, got {args.dropout}")
    if args.paste and args.file:
        raise TrainError("give a file or --paste, not both")
    if args.threads < 0:
        raise TrainError(f"--threads must be 0 (all cores) or more, got {args.threads}")
    if args.device not in ("auto", "cuda", "mps", "cpu"):
        raise TrainError(f"--device must be auto, cuda, mps or cpu, got {args.device!r}")


def _divisor(n: int) -> int:
    return next(h for h in (4, 2, 1) if n % h == 0)


def read_text(path: str | None, paste: bool, ui: UI, lang: str) -> tuple[str, str]:
    """(text, where it came from); TrainError for a file that is not usable text."""
    if paste:
        if ui.interactive:
            ui.say("Paste your text, then press Ctrl+D on an empty line (Ctrl+Z and Enter on Windows):")
        data = sys.stdin.buffer.read()
        source = "the pasted text"
    else:
        file = Path(path) if path else DEFAULT_CORPUS.get(lang, DEFAULT_CORPUS["en"])
        source = str(path) if path else f"the bundled corpus ({file.relative_to(ROOT).as_posix()})"
        if not file.exists():
            raise TrainError(f"{path}: no such file")
        if file.is_dir():
            raise TrainError(f"{path} is a directory, not a text file")
        try:
            data = file.read_bytes()
        except OSError as e:
            raise TrainError(f"{path} cannot be read: {e.strerror}") from None
    if b"\x00" in data[:65536]:
        raise TrainError(f"{source} looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TrainError(f"{source} is not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start}); "
                         f"save it as UTF-8 and try again") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if not text.strip():
        raise TrainError(f"{source} is empty")
    return text, source


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


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: CUDA is not available on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainError("--device mps: MPS is not available on this machine")
    if name not in ("cuda", "mps", "cpu"):
        raise TrainError(f"--device must be auto, cuda, mps or cpu, got {name!r}")
    return name


def whose_code(args, ui: UI) -> bool:
    """True to run the learner's exercises/, False for the reference in solutions/; says which on screen, and why.

    --mine and --reference decide; otherwise the learner's code runs once every step it needs (all of them: the
    checkpoint code of step 11 imports the others) passed its last check, and the reference until then.
    """
    from . import state, steps as course_steps

    every = [s.number for s in course_steps.all_steps()]
    if getattr(args, "reference", False) and args.mine:
        raise TrainError("give --mine or --reference, not both")
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


def load_steps(mine: bool) -> dict:
    """The step modules that training uses, from exercises/ (mine) or solutions/."""
    package = "exercises" if mine else "solutions"
    names = {"data": "step02_data", "config": "step03_embeddings", "gpt": "step08_gpt",
             "training": "step09_training", "generation": "step10_generation", "checkpoint": "step11_own_model"}
    modules = {}
    for key, module in names.items():
        try:
            modules[key] = importlib.import_module(f"{package}.{module}")
        except Exception as e:  # a learner's file that does not import: name it
            raise TrainError(f"{package}/{module}.py cannot be imported ({type(e).__name__}: {e})") from None
    return modules


@contextmanager
def learner_code(mine: bool):
    """Turn an unwritten function of the learner's into one sentence that names it."""
    try:
        yield
    except NotImplementedError as e:
        if not mine:
            raise
        raise TrainError(f"{_learner_function(e)} is not written yet: finish that step, or run without --mine "
                         f"(the reference)") from None


def run(args, ui: UI, lang: str) -> int:
    validate(args)
    text, source = read_text(args.file, args.paste, ui, lang)
    import torch

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    mine = whose_code(args, ui)
    steps = load_steps(mine)
    with learner_code(mine):
        return _train(args, ui, text, source, device, steps, torch)


def _learner_function(error: BaseException) -> str:
    tb = error.__traceback__
    found = "a step"
    while tb is not None:
        code = tb.tb_frame.f_code
        if "exercises" in Path(code.co_filename).parts:
            found = f"`{getattr(code, 'co_qualname', code.co_name)}()` in exercises/{Path(code.co_filename).name}"
        tb = tb.tb_next
    return found


def _train(args, ui: UI, text: str, source: str, device: str, steps: dict, torch) -> int:
    ckpt = steps["checkpoint"]
    training = steps["training"]
    directory = Path(args.checkpoint)
    began = time.perf_counter()
    torch.manual_seed(args.seed)

    start_epoch, optimizer_state, best = 0, None, math.inf
    if args.resume:
        try:
            model, tokenizer, extra = ckpt.load_checkpoint(directory, device=device)
        except (ValueError, FileNotFoundError) as e:
            raise TrainError(str(e)) from None
        start_epoch = int(extra.get("epoch", -1)) + 1
        optimizer_state = extra.get("optimizer")
        best = float(extra.get("best_val_loss", math.inf))
        ui.say(f"Resuming {directory}/ after epoch {start_epoch} (best validation loss {best:.3f}).")
        data = steps["data"]
        ids = data.as_token_array(tokenizer.encode(text), tokenizer.vocab_size)
        train_data, val_data = data.train_val_split(ids, 0.1)
        config = model.config
        _settings(ui, args, train_data, block=config.block_size)
        model.train()
    else:
        ui.say(f"Reading {escape(source)}: {len(text):,} characters.")
        t0 = time.perf_counter()
        tokenizer, train_data, val_data = ckpt.prepare_data(text, args.bpe_vocab_size, 0.1)
        n_tokens = len(train_data) + len(val_data)
        ui.say(f"Tokenizer: {tokenizer.vocab_size} tokens learned in {time.perf_counter() - t0:.1f} s; "
               f"{count(n_tokens, 'token')} in all ({len(text) / max(1, n_tokens):.2f} characters per token).")
        _settings(ui, args, train_data)
        config = steps["config"].GPTConfig(block_size=args.block_size, vocab_size=tokenizer.vocab_size,
                                           n_layer=args.n_layers, n_head=args.n_heads, n_embd=args.d_model,
                                           d_ff=args.d_ff, dropout=args.dropout)
        model = steps["gpt"].GPT(config).to(device)
    need = config.block_size + 1
    if len(train_data) < need or len(val_data) < need:
        raise TrainError(f"the text is too short: {len(train_data):,} training and {len(val_data):,} validation "
                         f"tokens, and each part needs at least block_size + 1 = {need}; use a longer text or a "
                         f"smaller --block_size")
    model = model.to(device)
    # Validation reads about the whole held-out text once (at least 2 batches, at most 20): more batches on a
    # small text would only read the same tokens again.
    windows = len(val_data) / (args.batch_size * config.block_size)
    tconf = training.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 eval_batches=min(20, max(2, math.ceil(windows))))
    # The optimizer is made here rather than inside train(), so that each checkpoint can keep its state.
    optimizer = training.configure_optimizer(model, tconf.lr, tconf.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if start_epoch >= tconf.epochs:
        raise TrainError(f"the checkpoint has already trained {start_epoch} epochs; ask for more with --epochs")
    per_epoch = training.steps_per_epoch(len(train_data), args.batch_size, config.block_size)
    n_params = sum(p.numel() for p in model.parameters())
    where = device
    if device == "cpu":
        why = "--threads"
        if not args.threads:
            probe = steps["data"].get_batch(train_data, config.block_size, args.batch_size,
                                            generator=torch.Generator().manual_seed(0))
            _, why = choose_threads(model, probe, torch)
        where = f"cpu, {count(torch.get_num_threads(), 'thread')}: {why}"
    ui.say(f"Model: {count(config.n_layer, 'layer')}, {count(config.n_head, 'head')}, d_model {config.n_embd}, d_ff {config.d_ff}, "
           f"block {config.block_size}: {n_params:,} parameters, on {where}.")
    ui.say(f"Training: {count(tconf.epochs, 'epoch')} of {count(per_epoch, 'step')} (batch {tconf.batch_size}); "
           f"Ctrl+C stops and keeps the best checkpoint.\n")

    # A new run never throws away the model of an earlier one: that moves to checkpoint.previous/ when this run
    # saves its first epoch (not before: Ctrl+C during the first epoch leaves checkpoint/ as it was). Only a
    # folder the course provably wrote (is_checkpoint_folder) is ever replaced: anything else stops the run here.
    previous = directory.with_name(directory.name + ".previous")
    keep_earlier = not args.resume and (directory / "model.pt").exists()
    _check_folders(ckpt, directory, previous, keep_earlier)
    if keep_earlier:
        ui.say(f"{directory}/ holds an earlier model: it will be kept as {previous}/.\n")

    from .trainview import TrainingView

    view = TrainingView(tconf.epochs, per_epoch, live=ui.out.is_terminal, write=ui.plain)
    view.header()
    state = {"best": best, "saved_epoch": None, "moved": False}

    def on_event(event: dict) -> None:
        note = ""
        if event["kind"] == "epoch":
            val = event["val_loss"]
            if val is not None and val < state["best"]:
                # Only an improvement is saved, atomically: Ctrl+C at any moment leaves the best one whole. The
                # new checkpoint is written in full first; the earlier one steps aside to previous/ only then,
                # right before the new one is renamed in (Ctrl+C between the two renames: see below).
                with ckpt.atomic_directory(directory) as folder:
                    ckpt.write_checkpoint(folder, model, tokenizer, extra={
                        "epoch": event["epoch"], "best_val_loss": val, "optimizer": optimizer.state_dict()})
                    if keep_earlier and state["saved_epoch"] is None and directory.exists():
                        _check_folders(ckpt, directory, previous, keep_earlier)
                        if previous.exists():
                            shutil.rmtree(previous)
                        state["moved"] = True  # set first: Ctrl+C may land right after the rename
                        directory.rename(previous)
                state["best"], state["saved_epoch"] = val, event["epoch"]
                note = "saved"
        view.update(event, note)

    try:
        history = training.train(model, train_data, val_data, tconf, callback=on_event,
                                 start_epoch=start_epoch, optimizer=optimizer)
    except KeyboardInterrupt:
        view.close()
        if state["moved"] and state["saved_epoch"] is None and not directory.exists() and previous.is_dir():
            previous.rename(directory)  # stopped between the two renames: the earlier model goes back
        kept = (f"the best checkpoint (epoch {state['saved_epoch'] + 1}, validation loss {state['best']:.3f}) "
                f"is in {directory}/" if state["saved_epoch"] is not None else
                (f"{directory}/ still holds the checkpoint it had" if (directory / "model.pt").exists()
                 else "no checkpoint was saved yet"))
        ui.say(f"\nStopped: {kept}.")
        return 130
    view.close()
    elapsed = time.perf_counter() - began
    ui.say("")
    tokens_seen = per_epoch * tconf.batch_size * config.block_size * (tconf.epochs - start_epoch)
    _summary(ui, history, state, directory, elapsed, tokens_seen)
    _sample(ui, steps, directory, device)
    return 0


def _settings(ui: UI, args, train_data, block: int | None = None) -> None:
    """The settings not given as flags, sized from the text (kata/recipe.py), said with why."""
    if recipe.too_short(len(train_data)):
        raise TrainError(f"the text is too short to learn from: {count(len(train_data), 'training token')}, and a "
                         f"model needs at least {recipe.MIN_TRAIN_TOKENS:,} (about 1 KB of text); give it a few "
                         f"pages, or train on the bundled corpus: python course.py train")
    told = recipe.fill(args, len(train_data), block)
    if told:
        ui.say(f"Settings sized for {count(len(train_data), 'training token')}: {', '.join(told)}; "
               f"a flag sets any of them.")


def _check_folders(ckpt, directory: Path, previous: Path, keep_earlier: bool) -> None:
    """TrainError, before anything is written, for a folder in the way that the course did not write."""
    old = directory.with_name(directory.name + ".old")
    if directory.exists() and not ckpt.is_checkpoint_folder(directory):
        raise TrainError(f"{directory}/ holds files that are not a checkpoint's, so it is left as it is: move it "
                         f"away, or save elsewhere with --checkpoint")
    for folder in ([previous] if keep_earlier else []) + ([old] if directory.exists() else []):
        if (folder.exists() or folder.is_symlink()) and not ckpt.is_checkpoint_folder(folder):
            raise TrainError(f"{folder}/ holds files that the course did not write, so it is left as it is: move "
                             f"it away (or rename it) and train again")


def _summary(ui: UI, history: list[dict], state: dict, directory: Path, elapsed: float, tokens_seen: int) -> None:
    last = history[-1] if history else None
    ui.say("[bold]Summary[/bold]")
    if last is not None:
        ui.say(f"  final train loss {last['train_loss']:.3f}, validation loss {last['val_loss']:.3f} "
               f"(perplexity {last['val_ppl']:.1f})")
    if state["saved_epoch"] is not None:
        ui.say(f"  best validation loss {state['best']:.3f} at epoch {state['saved_epoch'] + 1}, saved in {directory}/")
    ui.say(f"  {elapsed:.1f} s in all, {tokens_seen / max(elapsed, 1e-9):,.0f} tokens per second")


def _sample(ui: UI, steps: dict, directory: Path, device: str) -> None:
    """One line from the saved model, as a first taste of chat."""
    import torch

    if not (directory / "model.pt").exists():
        return
    model, tokenizer, _ = steps["checkpoint"].load_checkpoint(directory, device=device)
    generator = torch.Generator(device=device).manual_seed(0) if device != "mps" else None
    start = torch.tensor([tokenizer.encode("\n")], dtype=torch.long, device=device)
    with one_thread():
        out = steps["generation"].generate(model, start, 60, temperature=0.8, top_k=40, generator=generator)
    ui.say("\n[bold]A sample[/bold] (temperature 0.8, top-k 40):")
    ui.plain(tokenizer.decode(out[0, 1:].tolist()).strip())
    ui.say(f"\nTalk to it: python course.py chat --checkpoint {directory}")
