"""`course.py train`: train a GPT on a text file (or pasted text) with the steps' own code.

Everything that learns is the steps' code: the tokenizer (step 1), batches (step 2), the GPT (steps 3-8), the
training loop (step 9), generation (step 10) and checkpoints (step 11), taken from solutions/ or, with --mine,
from your exercises/ (kata/loader.py). This file checks the settings and runs the training in phases:

    the text and its tokenizer (or the checkpoint to resume) -> the settings sized from the text -> the model
    -> the optimizer -> the loop, which saves each improvement (kata/rotation.py) -> a summary -> a sample
"""

import argparse
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import recipe
from .errors import UserError
from .loader import Steps, add_code_choice, check_memory, checkpoint_folder, learner_code, load_model, \
    load_optimizer_state, load_steps, model_memory, one_thread, parse_seed, pick_device, read_text, whose_code
from .history import GradNorm, History, Recording, show as show_history
from .rotation import Rotation, TrainingLock
from .safetext import printable
from .threads import choose_threads
from .ui import UI, count, escape


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
    run.add_argument("--seed", default="1337", help="the same seed gives the same run (default 1337)")
    run.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cuda, mps or cpu")
    run.add_argument("--threads", type=int, default=0,
                     help="CPU threads for training (default: the fastest in a short probe at the start)")
    run.add_argument("--checkpoint", default="checkpoint", metavar="DIR",
                     help="where the best model is saved (default checkpoint/)")
    run.add_argument("--resume", action="store_true", help="continue training the checkpoint in --checkpoint")
    add_code_choice(run, "train")


def validate(args) -> None:
    """Refuse impossible settings before any work is done, in one sentence each."""
    positive = {"--epochs": args.epochs, "--d_model": args.d_model, "--n_heads": args.n_heads,
                "--n_layers": args.n_layers, "--d_ff": args.d_ff, "--block_size": args.block_size,
                "--batch_size": args.batch_size}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.d_model % args.n_heads:
        raise UserError(f"--d_model {args.d_model} is not divisible by --n_heads {args.n_heads}: "
                         f"each head gets an equal slice of the vector (try --n_heads {_divisor(args.d_model)})")
    if args.bpe_vocab_size < 256:
        raise UserError(f"--bpe_vocab_size must be at least 256 (one token per byte), got {args.bpe_vocab_size}")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise UserError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.dropout < 1:
        raise UserError(f"--dropout must be at least 0 and below 1, got {args.dropout}")
    if args.paste and args.file:
        raise UserError("give a file or --paste, not both")
    if args.threads < 0:
        raise UserError(f"--threads must be 0 (all cores) or more, got {args.threads}")
    if args.device not in ("auto", "cuda", "mps", "cpu"):
        raise UserError(f"--device must be auto, cuda, mps or cpu, got {args.device!r}")
    try:
        args.seed = parse_seed(str(args.seed), "--seed")
    except ValueError as e:
        raise UserError(str(e)) from None
    checkpoint_folder(args.checkpoint)
    if not args.resume:  # the largest model these flags could make, refused before minutes of tokenizer work
        check_memory({"n_embd": args.d_model, "vocab_size": args.bpe_vocab_size, "block_size": args.block_size or 64,
                      "d_ff": args.d_ff, "n_layer": args.n_layers, "n_head": args.n_heads}, batch_size=args.batch_size or 16)


def _divisor(n: int) -> int:
    return next(h for h in (4, 2, 1) if n % h == 0)


def run(args, ui: UI, lang: str) -> int:
    validate(args)
    text, source = read_text(args.file, args.paste, ui, lang)
    import torch

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = load_steps(whose_code(args, ui))
    with learner_code(steps.mine):
        return _train(args, ui, text, source, device, steps)


@dataclass
class Start:
    """What a run begins from: a new model on a new tokenizer, or a checkpoint being resumed."""

    model: object
    tokenizer: object
    train_data: object       # the training tokens (step 2's array)
    val_data: object         # the held-out tokens
    epoch: int = 0           # the first epoch to train (from 0)
    optimizer_state: dict | None = None
    best: float = math.inf   # the validation loss a save must beat
    state_file: Path | None = None  # where optimizer_state was read from
    history: History = field(default_factory=History)  # the steps and epochs trained so far (kata/history.py)


def _train(args, ui: UI, text: str, source: str, device: str, steps: Steps) -> int:
    directory = Path(args.checkpoint)
    with TrainingLock(directory):  # a second training into the same folder is refused until this one ends
        return _train_locked(args, ui, text, source, device, steps, directory)


def _train_locked(args, ui: UI, text: str, source: str, device: str, steps: Steps, directory: Path) -> int:
    import torch

    began = time.perf_counter()
    torch.manual_seed(args.seed)
    # A new run never throws away the model of an earlier one: that moves to checkpoint.previous/ when this run
    # saves its first epoch (not before: Ctrl+C during the first epoch leaves checkpoint/ as it was).
    keeper = Rotation(steps.checkpoint, directory, keep_earlier=not args.resume and (directory / "model.pt").exists())
    keeper.check_writable(0)
    start = _resume(args, ui, text, steps, device, directory) if args.resume else _fresh(args, ui, text, source, steps)
    model = start.model.to(device)
    keeper.best = start.best
    keeper.check_writable(12 * model_memory(asdict(model.config))[0])  # the weights, Adam's two numbers a weight
    tconf = _training_config(args, steps, start)
    optimizer = _optimizer(steps, model, tconf, start)
    per_epoch = steps.training.steps_per_epoch(len(start.train_data), tconf.batch_size, model.config.block_size)
    _describe(ui, args, steps, start, tconf, per_epoch, device)
    if keeper.keep_earlier:
        ui.say(f"{directory}/ holds an earlier model: it will be kept as {keeper.previous}/.\n")
    history = _loop(ui, steps, start, tconf, optimizer, per_epoch, keeper)
    if history is None:
        return 130
    elapsed = time.perf_counter() - began
    ui.say("")
    tokens_seen = per_epoch * tconf.batch_size * model.config.block_size * (tconf.epochs - start.epoch)
    _summary(ui, history, keeper, elapsed, tokens_seen)
    show_history(ui, start.history, directory)
    _sample(ui, steps, directory, device)
    return 0


def _fresh(args, ui: UI, text: str, source: str, steps: Steps) -> Start:
    """A tokenizer trained on the text, the settings sized from it, and a new model."""
    ui.say(f"Reading {escape(source)}: {len(text):,} characters.")
    t0 = time.perf_counter()
    tokenizer, train_data, val_data = _prepare_data(ui, steps, text, args.bpe_vocab_size)
    n_tokens = len(train_data) + len(val_data)
    ui.say(f"Tokenizer: {tokenizer.vocab_size} tokens learned in {time.perf_counter() - t0:.1f} s; "
           f"{count(n_tokens, 'token')} in all ({len(text) / max(1, n_tokens):.2f} characters per token).")
    _settings(ui, args, train_data)
    _check_length(train_data, val_data, args.block_size)
    config = steps.config.GPTConfig(block_size=args.block_size, vocab_size=tokenizer.vocab_size,
                                    n_layer=args.n_layers, n_head=args.n_heads, n_embd=args.d_model,
                                    d_ff=args.d_ff, dropout=args.dropout)
    check_memory(asdict(config), batch_size=args.batch_size)  # before the model takes it
    return Start(steps.gpt.GPT(config), tokenizer, train_data, val_data)


def _prepare_data(ui: UI, steps: Steps, text: str, vocab_size: int):
    """Step 11's prepare_data, said on screen while it runs; the reference uses the incremental BPE trainer.

    solutions/_fast_bpe.py learns the same merges as step 1's Tokenizer.train and gives the same ids as its
    encode (tests/test_fast_bpe.py), in seconds where the plain way takes minutes on a long text."""
    if steps.mine:
        with Busy(ui, "Training your tokenizer"):
            return steps.checkpoint.prepare_data(text, vocab_size, 0.1)
    from solutions import _fast_bpe

    tokenizer = steps.checkpoint.Tokenizer()
    with Busy(ui, "Training the tokenizer") as busy:
        _fast_bpe.train_fast(tokenizer, text, vocab_size,
                             progress=lambda done, total: busy.show(f"{done:,} of {total:,} merges"))
        busy.show("encoding the text")
        ids = _fast_bpe.encode_fast(tokenizer, text)
    data = steps.data.as_token_array(ids, tokenizer.vocab_size)
    return (tokenizer, *steps.data.train_val_split(data, 0.1))


def _encode(ui: UI, steps: Steps, tokenizer, text: str) -> list[int]:
    if steps.mine:
        with Busy(ui, "Encoding the text with your tokenizer"):
            return tokenizer.encode(text)
    from solutions import _fast_bpe

    with Busy(ui, "Encoding the text"):
        return _fast_bpe.encode_fast(tokenizer, text)


class Busy:
    """One line saying what is being done and for how long: redrawn in place in a terminal, every 10 s in a log.

    A thread redraws it each half second, so that even work that reports nothing (your tokenizer) is never
    silent; `show` adds how far it got."""

    def __init__(self, ui: UI, label: str):
        self.ui, self.label, self.detail = ui, label, ""
        self.live = ui.out.is_terminal
        self.began = time.perf_counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.width = 0

    def show(self, detail: str) -> None:
        self.detail = detail

    def __enter__(self) -> "Busy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.width:
            sys.stdout.write("\r" + " " * self.width + "\r")
            sys.stdout.flush()

    def _run(self) -> None:
        logged = 0.0
        while not self.stop.wait(0.5):
            elapsed = time.perf_counter() - self.began
            line = f"{self.label}: {self.detail + ', ' if self.detail else ''}{elapsed:.0f} s"
            if self.live:
                sys.stdout.write("\r" + line.ljust(self.width))
                sys.stdout.flush()
                self.width = max(self.width, len(line))
            elif elapsed - logged >= 10:
                self.ui.plain(line)
                logged = elapsed


def _resume(args, ui: UI, text: str, steps: Steps, device: str, directory: Path) -> Start:
    """The checkpoint's model, tokenizer and training state, and the text in its tokenizer's ids."""
    model, tokenizer, extra = load_model(steps, directory, device, training=True)
    epoch = int(extra.get("epoch", -1)) + 1
    best = float(extra.get("best_val_loss", math.inf))
    ui.say(f"Resuming {directory}/ after epoch {epoch} (best validation loss {best:.3f}).")
    ids = steps.data.as_token_array(_encode(ui, steps, tokenizer, text), tokenizer.vocab_size)
    train_data, val_data = steps.data.train_val_split(ids, 0.1)
    _settings(ui, args, train_data, block=model.config.block_size)
    _check_length(train_data, val_data, model.config.block_size)
    check_memory(asdict(model.config), f"{directory}/ holds a model too large to train here", args.batch_size,
                 fix="resume it on a machine with more memory")
    model.train()
    return Start(model, tokenizer, train_data, val_data, epoch, extra.get("optimizer"), best,
                 directory / "train_state.pt", History.from_extra(extra))


def _settings(ui: UI, args, train_data, block: int | None = None) -> None:
    """The settings not given as flags, sized from the text (kata/recipe.py), said with why."""
    if recipe.too_short(len(train_data)):
        raise UserError(f"the text is too short to learn from: {count(len(train_data), 'training token')}, and a "
                        f"model needs at least {recipe.MIN_TRAIN_TOKENS:,} (about 1 KB of text); give it a few "
                        f"pages, or train on the bundled corpus: python course.py train")
    told = recipe.fill(args, len(train_data), block)
    if told:
        ui.say(f"Settings sized for {count(len(train_data), 'training token')}: {', '.join(told)}; "
               f"a flag sets any of them.")


def _check_length(train_data, val_data, block_size: int) -> None:
    need = block_size + 1
    if len(train_data) < need or len(val_data) < need:
        raise UserError(f"the text is too short: {len(train_data):,} training and {len(val_data):,} validation "
                        f"tokens, and each part needs at least block_size + 1 = {need}; use a longer text or a "
                        f"smaller --block_size")


def _training_config(args, steps: Steps, start: Start):
    # Validation reads about the whole held-out text once (at least 2 batches, at most 20): more batches on a
    # small text would only read the same tokens again.
    windows = len(start.val_data) / (args.batch_size * start.model.config.block_size)
    tconf = steps.training.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                       eval_batches=min(20, max(2, math.ceil(windows))))
    if start.epoch >= tconf.epochs:
        raise UserError(f"the checkpoint has already trained {start.epoch} epochs; ask for more with --epochs")
    return tconf


def _optimizer(steps: Steps, model, tconf, start: Start):
    """Made here rather than inside train(), so that each checkpoint can keep its state."""
    optimizer = steps.training.configure_optimizer(model, tconf.lr, tconf.weight_decay)
    if start.optimizer_state is not None:
        load_optimizer_state(optimizer, start.optimizer_state, start.state_file)
    return optimizer


def _describe(ui: UI, args, steps: Steps, start: Start, tconf, per_epoch: int, device: str) -> None:
    """The model and the run in two lines; on a CPU, the thread count a short probe picked (kata/threads.py)."""
    import torch

    model, config = start.model, start.model.config
    where = device
    if device == "cpu":
        why = "--threads"
        if not args.threads:
            probe = steps.data.get_batch(start.train_data, config.block_size, tconf.batch_size,
                                         generator=torch.Generator().manual_seed(0))
            _, why = choose_threads(model, probe, torch)
        where = f"cpu, {count(torch.get_num_threads(), 'thread')}: {why}"
    n_params = sum(p.numel() for p in model.parameters())
    ui.say(f"Model: {count(config.n_layer, 'layer')}, {count(config.n_head, 'head')}, d_model {config.n_embd}, "
           f"d_ff {config.d_ff}, block {config.block_size}: {n_params:,} parameters, on {where}.")
    ui.say(f"Training: {count(tconf.epochs, 'epoch')} of {count(per_epoch, 'step')} (batch {tconf.batch_size}); "
           f"Ctrl+C stops and keeps the best checkpoint.\n")


def _loop(ui: UI, steps: Steps, start: Start, tconf, optimizer, per_epoch: int, keeper: Rotation):
    """Step 9's train(), shown as a table, each improvement saved; the history, or None after Ctrl+C."""
    from .trainview import TrainingView

    view = TrainingView(tconf.epochs, per_epoch, live=ui.out.is_terminal, write=ui.plain)
    view.header()
    grad_norm = GradNorm(start.model)
    keeper.ckpt = Recording(keeper.ckpt, start.history)  # each save keeps the history up to its epoch

    def on_event(event: dict) -> None:
        start.history.add(event, grad_norm.take() if event["kind"] == "step" else math.nan)
        saved = event["kind"] == "epoch" and keeper.offer(event["epoch"], event["val_loss"], start.model,
                                                          start.tokenizer, optimizer)
        view.update(event, "saved" if saved else "")

    try:
        history = steps.training.train(start.model, start.train_data, start.val_data, tconf, callback=on_event,
                                       start_epoch=start.epoch, optimizer=optimizer)
    except KeyboardInterrupt:
        view.close()
        ui.say(f"\nStopped: {keeper.interrupted()}.")
        return None
    except UserError:  # a save that failed: its sentence goes below the table
        view.close()
        ui.say("")
        raise
    view.close()
    return history


def _summary(ui: UI, history: list[dict], keeper: Rotation, elapsed: float, tokens_seen: int) -> None:
    last = history[-1] if history else None
    ui.say("[bold]Summary[/bold]")
    if last is not None:
        ui.say(f"  final train loss {last['train_loss']:.3f}, validation loss {last['val_loss']:.3f} "
               f"(perplexity {last['val_ppl']:.1f})")
    if keeper.saved_epoch is not None:
        ui.say(f"  best validation loss {keeper.best:.3f} at epoch {keeper.saved_epoch + 1}, saved in "
               f"{keeper.directory}/")
    ui.say(f"  {elapsed:.1f} s in all, {tokens_seen / max(elapsed, 1e-9):,.0f} tokens per second")


def _sample(ui: UI, steps: Steps, directory: Path, device: str) -> None:
    """One line from the saved model, as a first taste of chat."""
    import torch

    if not (directory / "model.pt").exists():
        return
    model, tokenizer, _ = load_model(steps, directory, device)
    generator = torch.Generator(device=device).manual_seed(0) if device != "mps" else None
    start = torch.tensor([tokenizer.encode("\n")], dtype=torch.long, device=device)
    with one_thread():
        out = steps.generation.generate(model, start, 60, temperature=0.8, top_k=40, generator=generator)
    ui.say("\n[bold]A sample[/bold] (temperature 0.8, top-k 40):")
    ui.plain(printable(tokenizer.decode(out[0, 1:].tolist())).strip())
    ui.say(f"\nTalk to it: python course.py chat --checkpoint {directory}")
