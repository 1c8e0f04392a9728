"""The bench every experiment runs on: one text, one seed, one budget of steps, the steps' own training code.

A variant is a model (built from the step modules, with one part swapped) and the settings it trains with. Each
variant is trained here in the same way, with step 9's pieces (lr_at, train_step, evaluate) and step 2's
batches, for the same number of steps, and measured the same way:

    train and validation loss    step 9's evaluate on fixed batches (seeded), in nats per token
    bits per character           the validation loss in bits, spread over the characters those tokens spell,
                                 so that models with different tokenizers compare fairly
    a sample                     step 10's generate from the same prompt with the same random stream
"""

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..loader import Steps
from ..safetext import printable


@dataclass(frozen=True)
class Settings:
    """One run's model and training settings; each experiment changes a few of them."""

    n_embd: int = 64           # width of every token's vector (d_model)
    n_head: int = 4            # attention heads per block
    n_layer: int = 4           # transformer blocks
    d_ff: int = 256            # hidden width of the feed-forward network
    block_size: int = 32       # context in tokens: the bundled corpus gets 32 from kata/recipe.py too
    batch_size: int = 16       # windows per step
    lr: float = 3e-3           # the peak learning rate (kata/recipe.py's for a model up to 128 wide)
    warmup: bool = True        # a linear warm-up first, as step 9's train does...
    warmup_fraction: float = 0.05  # ...over this part of the steps (step 9's: 5%)
    vocab_size: int = 512      # the BPE vocabulary, as course.py train uses by default
    eval_batches: int = 4      # batches per point of a loss curve
    final_batches: int = 12    # batches for the numbers in the table
    sample_tokens: int = 40    # tokens in each variant's sample


FULL = Settings()
# --quick: a model and a run so small that every experiment finishes in a second or two (the test suite's).
QUICK = Settings(n_embd=16, n_head=2, n_layer=1, d_ff=32, block_size=16, batch_size=4, vocab_size=300,
                 eval_batches=1, final_batches=2, sample_tokens=8)
QUICK_CHARACTERS = 6000        # --quick reads only the start of the text
DEFAULT_BUDGET = 300           # steps per variant: about 30 s for the default model on one laptop core
QUICK_BUDGET = 4
CURVE_POINTS = 12              # evaluations along each run, for the loss curves


@dataclass(frozen=True)
class Lab:
    """What every variant of an experiment shares."""

    steps: Steps
    text: str
    settings: Settings         # FULL or QUICK; variants change fields of it
    budget: int                # optimisation steps per variant
    seed: int = 1337
    lang: str = "en"           # the language of the variants' names

    def words(self, en: str, pl: str) -> str:
        return pl if self.lang == "pl" else en


@dataclass
class Corpus:
    """A text as one tokenizer reads it: the tokens to train on and the held-out tokens."""

    tokenizer: object
    train: np.ndarray
    val: np.ndarray
    val_characters: int        # characters the validation tokens spell

    @property
    def characters_per_token(self) -> float:
        return self.val_characters / max(1, len(self.val))


@dataclass
class Result:
    """One row of an experiment's table, and its curve."""

    name: str
    parameters: int
    seconds: float
    train_loss: float
    val_loss: float
    bits_per_character: float
    sample: str
    curve: dict = field(default_factory=dict)    # series name -> losses at `steps`
    steps: list = field(default_factory=list)    # the steps the curve's points were measured after
    extra: dict = field(default_factory=dict)    # columns only this experiment has: name -> text


def train_tokenizer(steps: Steps, text: str, vocab_size: int):
    """Step 1's tokenizer trained on text. The reference uses its fast trainer, which learns the same merges."""
    tokenizer = steps.checkpoint.Tokenizer()
    if steps.mine:
        tokenizer.train(text, vocab_size)
    else:
        from solutions._fast_bpe import train_fast

        train_fast(tokenizer, text, vocab_size)
    return tokenizer


def make_corpus(steps: Steps, text: str, vocab_size: int) -> Corpus:
    """The text in a tokenizer trained on it, split as course.py train splits it (the last 10% held out)."""
    tokenizer = train_tokenizer(steps, text, vocab_size)
    ids = steps.data.as_token_array(tokenizer.encode(text), tokenizer.vocab_size)
    train, val = steps.data.train_val_split(ids, 0.1)
    return Corpus(tokenizer, train, val, len(tokenizer.decode(val.tolist())))


def gpt_config(steps: Steps, settings: Settings, vocab_size: int):
    return steps.config.GPTConfig(block_size=settings.block_size, vocab_size=vocab_size, n_layer=settings.n_layer,
                                  n_head=settings.n_head, n_embd=settings.n_embd, d_ff=settings.d_ff, dropout=0.0)


def build_gpt(lab: Lab, settings: Settings, corpus: Corpus, swap: Callable | None = None):
    """Step 8's GPT, seeded, with `swap(model)` applied: the one part a variant changes."""
    torch.manual_seed(lab.seed)
    model = lab.steps.gpt.GPT(gpt_config(lab.steps, settings, corpus.tokenizer.vocab_size))
    if swap is not None:
        swap(model)
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied tensor is listed once


def evaluation_steps(budget: int, points: int = CURVE_POINTS) -> list[int]:
    """The steps after which a curve is measured: evenly spread, the last one included.

    budget=300, points=12 -> [25, 50, ..., 300];  budget=4 -> [1, 2, 3, 4]
    """
    n = min(points, budget)
    return sorted({round(budget * (i + 1) / n) for i in range(n)})


def loss_on(lab: Lab, model, data: np.ndarray, settings: Settings, batches: int) -> float:
    """Step 9's evaluate on batches drawn from a generator seeded alike for every variant."""
    generator = torch.Generator().manual_seed(lab.seed)
    return lab.steps.training.evaluate(model, data, model.config.block_size, settings.batch_size, batches, generator)


def train(lab: Lab, model, corpus: Corpus, settings: Settings, total: int | None = None,
          points: list[int] | None = None, on_point: Callable | None = None) -> dict:
    """Train model for `total` steps (lab.budget) with step 9's pieces; return {"train": [...], "val": [...]}.

    The learning rate follows step 9's lr_at (a warm-up over settings.warmup_fraction of the steps unless settings.warmup is False,
    then a cosine); the batches come from one generator seeded alike for every variant. The losses are
    measured after each step in `points` (evaluation_steps(total)), and on_point(step) is called then.
    """
    training = lab.steps.training
    total = total or lab.budget
    optimizer = training.configure_optimizer(model, settings.lr)
    warmup = max(1, round(total * settings.warmup_fraction)) if settings.warmup else 0
    batches = torch.Generator().manual_seed(lab.seed)
    points = set(points or evaluation_steps(total))
    curve = {"train": [], "val": []}
    model.train()
    for step in range(total):
        lr = training.lr_at(step, settings.lr, warmup, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = lab.steps.data.get_batch(corpus.train, model.config.block_size, settings.batch_size, generator=batches)
        training.train_step(model, optimizer, x, y)
        if step + 1 in points:
            curve["train"].append(loss_on(lab, model, corpus.train, settings, settings.eval_batches))
            curve["val"].append(loss_on(lab, model, corpus.val, settings, settings.eval_batches))
            if on_point is not None:
                on_point(step + 1)
    return curve


def bits_per_character(val_loss: float, corpus: Corpus) -> float:
    """nats per token -> bits per character: / ln 2, then times the tokens per character of the held-out text.

    2.0 nats a token at 2.5 characters a token -> 2.0 / 0.693 / 2.5 = 1.15 bits a character
    """
    return val_loss / math.log(2) / corpus.characters_per_token


def prompt_of(text: str) -> str:
    """The text's first word and a space: every sample in an experiment starts from it ("The cat..." -> "The ")."""
    words = text.split()
    return (words[0] + " ") if words else "\n"


def sample(lab: Lab, model, corpus: Corpus, settings: Settings, temperature: float = 0.8) -> str:
    """settings.sample_tokens tokens from the text's prompt, with a generator seeded alike for every variant."""
    prompt = prompt_of(lab.text)
    start = torch.tensor([corpus.tokenizer.encode(prompt)], dtype=torch.long)
    generator = torch.Generator().manual_seed(lab.seed)
    out = lab.steps.generation.generate(model, start, settings.sample_tokens, temperature=temperature, top_k=40,
                                        use_cache=False, generator=generator)
    return printable(corpus.tokenizer.decode(out[0].tolist()))


def measure(lab: Lab, name: str, model, corpus: Corpus, settings: Settings, seconds: float, curve: dict,
            **extra) -> Result:
    """The table's row for a trained model."""
    train_loss = loss_on(lab, model, corpus.train, settings, settings.final_batches)
    val_loss = loss_on(lab, model, corpus.val, settings, settings.final_batches)
    return Result(name, count_parameters(model), seconds, train_loss, val_loss, bits_per_character(val_loss, corpus),
                  sample(lab, model, corpus, settings), curve, evaluation_steps(lab.budget), extra)


def run_gpt(lab: Lab, name: str, corpus: Corpus, settings: Settings | None = None, swap: Callable | None = None,
            **extra) -> Result:
    """Build, train and measure one GPT variant: the common case of every experiment."""
    settings = settings or lab.settings
    model = build_gpt(lab, settings, corpus, swap)
    began = time.perf_counter()
    curve = train(lab, model, corpus, settings)
    return measure(lab, name, model, corpus, settings, time.perf_counter() - began, curve, **extra)


def changed(lab: Lab, **fields) -> Settings:
    return replace(lab.settings, **fields)
