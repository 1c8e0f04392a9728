"""Live demos, one module per step: `run(pkg)` shows the step's code at work on text from the bundled corpus.

`pkg` is the package to demonstrate: "exercises" once the learner's step passes, "solutions" before.
Demos print plain text that fits 80 columns; course.py decides what to run and says whose code it is.
"""

import importlib
from functools import lru_cache
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).resolve().parents[2] / "data"


def load(pkg: str, module: str) -> ModuleType:
    """The step module `module` (e.g. "step04_attention") from package `pkg`."""
    return importlib.import_module(f"{pkg}.{module}")


def corpus(lang: str = "en") -> str:
    """The bundled corpus, data/corpus_<lang>.txt."""
    return (DATA / f"corpus_{lang}.txt").read_text(encoding="utf-8")


def sample_sentence(lang: str = "en", index: int = 0) -> str:
    """A short, plain sentence from the bundled corpus: the first non-empty line (or the index-th)."""
    lines = [line.strip() for line in corpus(lang).splitlines() if line.strip()]
    return lines[index % len(lines)]


VOCAB_SIZE = 512  # the direct modes' default (--bpe_vocab_size)
TOKENIZER_NOTE = f"the BPE tokenizer of step 1, trained on the corpus to {VOCAB_SIZE} tokens"


@lru_cache(maxsize=None)
def corpus_tokenizer(lang: str = "en"):
    """The reference tokenizer of step 1, trained on the bundled corpus to VOCAB_SIZE tokens (once per run).

    Demos of later steps tokenize with the reference, so that they show the later step's code, not step 1's.
    """
    tokenizer = load("solutions", "step01_tokenizer").Tokenizer()
    tokenizer.train(corpus(lang), VOCAB_SIZE)
    return tokenizer
