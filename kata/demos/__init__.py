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


CHECKPOINT = DATA.parent / "checkpoint"  # where `python course.py train` saves by default


class Trained:
    """The model `course.py train` saved in checkpoint/, loaded by the reference's step 11 (or the reason not)."""

    def __init__(self, folder: Path):
        self.folder, self.model, self.tokenizer, self.problem = folder, None, None, ""
        if not (folder / "model.pt").is_file():
            return
        try:
            import torch

            model, self.tokenizer, _ = load("solutions", "step11_own_model").load_checkpoint(folder)
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise ValueError("its weights hold NaN or infinity")
            self.model = model.eval()
        except Exception as e:  # a demo never fails for a damaged checkpoint: it says so and goes on untrained
            self.problem = f"{folder.name}/ did not load ({e}); this demo uses an untrained model"

    def note(self) -> str:
        """One line saying which model the demo shows."""
        if self.model is not None:
            c = self.model.config
            return (f"The trained model in {self.folder.name}/ ({c.n_layer} layers, {c.n_head} heads, "
                    f"n_embd {c.n_embd}, {self.tokenizer.vocab_size} tokens).")
        return self.problem or f"No trained model in {self.folder.name}/ yet (python course.py train makes one)."


def trained() -> Trained:
    """What checkpoint/ holds, loaded afresh on every demo (a new training may have replaced it)."""
    return Trained(CHECKPOINT)


def residual_inputs(model, ids: list[int]) -> list:
    """The residual stream entering each block of `model` for one sequence: a list of (1, T, C) tensors."""
    import torch

    with torch.no_grad():
        x = model.transformer.emb(torch.tensor([ids]))
        inputs = []
        for block in model.transformer.h:
            inputs.append(x)
            x = block(x)
    return inputs
