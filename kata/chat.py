"""`course.py chat`: type a prompt, watch the trained model continue it, token by token.

The model, tokenizer and sampling are the steps' own code (step 11 loads the checkpoint, step 10 samples).
Settings change with slash commands; without a terminal, each line of standard input is one prompt.
"""

import argparse
import math
import sys
import warnings

from .errors import UserError
from .loader import Steps, add_code_choice, checkpoint_folder, learner_code, load_model, load_steps, one_thread, \
    parse_seed, pick_device, whose_code
from .safetext import printable
from .ui import UI, count, escape

HELP = """commands:
  /temp T    temperature: 0 always takes the likeliest token, 1 samples as trained, higher is wilder
  /topk K    sample only among the K likeliest tokens (0: no limit)
  /topp P    sample only from the likeliest tokens whose probabilities add up to P (1: no limit)
  /len N     how many tokens to generate
  /seed S    make the samples repeatable (/seed off: fresh randomness)
  /show      the current settings
  /help      this list
  /quit      leave (Ctrl+D too)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="checkpoint", metavar="DIR", help="the checkpoint to load (default checkpoint/)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    add_code_choice(parser, "generate")
    parser.add_argument("--temp", type=float, default=0.8, help="temperature (default 0.8)")
    parser.add_argument("--topk", type=int, default=40, help="top-k (default 40; 0: off)")
    parser.add_argument("--topp", type=float, default=1.0, help="top-p (default 1: off)")
    parser.add_argument("--len", type=int, default=100, dest="length", help="tokens per answer (default 100)")
    parser.add_argument("--seed", default=None, help="a seed for repeatable samples")


MAX_TEMP = 100.0     # hotter only flattens the draw further, towards every token alike
MIN_TEMP = 1e-3      # colder draws the likeliest token every time, as 0 does (and far colder overflows)
MAX_LENGTH = 10_000  # tokens per answer


class Settings:
    def __init__(self, args):
        self.temp, self.topk, self.topp, self.length = args.temp, args.topk, args.topp, args.length
        self.seed = None if args.seed is None else parse_seed(args.seed, "the seed")
        self.vocab = None  # the model's vocabulary size, once it is loaded
        self.notes = _check(self)

    def show(self) -> str:
        return (f"temperature {self.temp:g}, top-k {self.topk or 'off'}, top-p {self.topp:g}, "
                f"length {self.length}, seed {self.seed if self.seed is not None else 'off'}")


def _check(s: Settings) -> list[str]:
    """ValueError for a setting that sampling cannot use; one that can only mean another is set to it, and said."""
    notes = []
    if not 0 <= s.temp <= MAX_TEMP:  # NaN too
        raise ValueError(f"the temperature must be 0 or more and at most {MAX_TEMP:g}, got {s.temp:g}")
    if 0 < s.temp < MIN_TEMP:
        notes.append(f"temperature {s.temp:g} draws the likeliest token every time, as 0 does: set to 0")
        s.temp = 0.0
    if s.topk < 0:
        raise ValueError(f"top-k must be 0 (off) or more, got {s.topk}")
    if s.vocab is not None and s.topk > s.vocab:
        notes.append(f"top-k {s.topk:,} is more than the model's {s.vocab:,} tokens: set to 0 (no limit)")
        s.topk = 0
    if not 0 < s.topp <= 1:
        raise ValueError(f"top-p must be above 0 and at most 1, got {s.topp:g}")
    if not 1 <= s.length <= MAX_LENGTH:
        raise ValueError(f"the length must be from 1 to {MAX_LENGTH:,} tokens, got {s.length:,}")
    return notes


def command(settings: Settings, line: str) -> str | None:
    """Apply one slash command; return what to say, or None to quit. ValueError for a bad one."""
    name, _, value = line.strip().partition(" ")
    value = value.strip()
    setters = {"/temp": ("temp", float), "/topk": ("topk", int), "/topp": ("topp", float), "/len": ("length", int)}
    if name in ("/quit", "/exit", "/q"):
        return None
    if name == "/help":
        return HELP
    if name == "/show":
        return settings.show()
    if name == "/seed":
        if value in ("off", "none", ""):
            settings.seed = None
        else:
            settings.seed = parse_seed(value, "the seed")
        return settings.show()
    if name in setters:
        attr, kind = setters[name]
        old = getattr(settings, attr)
        setattr(settings, attr, _number(kind, value, f"{name} {'20' if kind is int else '0.8'}"))
        try:
            notes = _check(settings)
        except ValueError:
            setattr(settings, attr, old)
            raise
        return "\n".join([*notes, settings.show()])
    raise ValueError(f"unknown command {name}; /help lists them")


def _number(kind, value: str, example: str):
    """float, or int where "1e3" is 1000 too; ValueError saying what to type."""
    try:
        number = float(value)
        if kind is int:
            if not (math.isfinite(number) and number.is_integer()):
                raise ValueError
            number = int(value) if value.strip().lstrip("+-").isdigit() else int(number)  # exact for long ones
        return number
    except ValueError:
        raise ValueError(f"{value or 'nothing'} is not a {'whole ' if kind is int else ''}number: try {example}") from None


def run(args, ui: UI) -> int:
    try:
        settings = Settings(args)
    except ValueError as e:
        raise UserError(str(e)) from None
    checkpoint_folder(args.checkpoint)
    device = pick_device(args.device)
    steps = load_steps(whose_code(args, ui))
    with learner_code(steps.mine):
        return _talk(args, ui, settings, device, steps)


def _talk(args, ui: UI, settings: Settings, device: str, steps: Steps) -> int:
    import torch

    model, tokenizer, _ = load_model(steps, args.checkpoint, device)
    c = model.config
    ui.say(f"Loaded {escape(str(args.checkpoint))}/: {count(c.n_layer, 'layer')}, {count(c.n_head, 'head')}, d_model {c.n_embd}, "
           f"vocabulary {c.vocab_size}, context {c.block_size} tokens.")
    settings.vocab = c.vocab_size
    for note in settings.notes + _check(settings):
        ui.say(f"[yellow]{escape(note)}[/yellow]")
    if hasattr(sys.stdin, "reconfigure"):  # a line that is not UTF-8 is named below, not a crash in input()
        sys.stdin.reconfigure(errors="surrogateescape")
    if ui.interactive:
        ui.say("Type the start of a text and the model continues it. /help for settings, /quit or Ctrl+D to leave.")
    generate_tokens = steps.generation.generate_tokens
    while True:
        try:
            line = ui.ask("[bold]you>[/bold] ") if ui.interactive else sys.stdin.readline()
        except EOFError:
            line = ""
        if line == "" or line is None:  # Ctrl+D, or the end of the input
            ui.say("\nBye." if ui.interactive else "")
            return 0
        line = line.rstrip("\n")
        if any("\udc80" <= ch <= "\udcff" for ch in line):  # the bytes that did not decode
            ui.say("[yellow]that line is not UTF-8 text (is the terminal set to UTF-8?), so nothing was generated: "
                   "type it again[/yellow]")
            continue
        if line.startswith("/"):
            try:
                reply = command(settings, line)
            except ValueError as e:
                ui.say(f"[yellow]{escape(str(e))}[/yellow]")
                continue
            if reply is None:
                ui.say("Bye.")
                return 0
            ui.plain(reply)
            continue
        prompt = line if line.strip() else "\n"
        ids = tokenizer.encode(prompt)
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        generator = None
        if settings.seed is not None:
            generator = torch.Generator(device=device).manual_seed(settings.seed)
        try:
            with one_thread(), warnings.catch_warnings():  # a library's warning would break the streamed line
                warnings.simplefilter("ignore")
                _stream(ui, tokenizer, generate_tokens(
                    model, idx, settings.length, temperature=settings.temp, top_k=settings.topk or None,
                    top_p=settings.topp if settings.topp < 1 else None, generator=generator), prompt)
        except KeyboardInterrupt:  # Ctrl+C stops this answer, not the chat
            ui.say("\n[dim](stopped)[/dim]")


def _stream(ui: UI, tokenizer, tokens, prompt: str) -> None:
    """Print each new token as it comes. A character split over two tokens waits for its second half."""
    out = sys.stdout
    out.write(prompt if prompt != "\n" else "")
    out.flush()
    new: list[int] = []
    shown = ""
    for token in tokens:
        new.append(int(token[0, 0]))
        text = printable(tokenizer.decode(new))
        ready = text.rstrip("\ufffd")  # an incomplete UTF-8 sequence decodes to U+FFFD for now
        out.write(ready[len(shown):])
        out.flush()
        shown = ready
    out.write(printable(tokenizer.decode(new))[len(shown):] + "\n")
    out.flush()
