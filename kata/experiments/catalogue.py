"""The experiments: for each, its variants, what to notice (English and Polish) and the effect it should show.

Every variant trains with the same seed, text and number of steps (kata/experiments/lab.py); the parts a
variant swaps live in positions.py, blocks.py, attention.py and baselines.py.
"""

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from . import attention, blocks, positions
from .baselines import CountingBigram, LSTMModel, matching_hidden
from .lab import Lab, Result, build_gpt, changed, evaluation_steps, make_corpus, measure, printable, prompt_of, \
    run_gpt, train


@dataclass(frozen=True)
class Chart:
    series: dict            # name -> values, one per x
    xs: list
    x_label: str
    y_label: str


@dataclass(frozen=True)
class Experiment:
    name: str
    title: tuple            # (English, Polish)
    run: Callable           # Lab -> list[Result], one per row of the table
    notice: tuple           # (English lines, Polish lines): what to look at in the table and the curves
    expected: tuple         # (English, Polish): the effect the experiment should show
    showed: Callable        # list[Result] -> bool: did it show on this run?
    chart: Callable = None  # (Lab, results) -> Chart; None: the validation curves


def validation_curves(lab: Lab, results: list[Result]) -> Chart:
    return Chart({r.name: r.curve["val"] for r in results}, results[0].steps, lab.words("step", "krok"),
                 lab.words("validation loss", "strata walidacyjna"))


def by_name(results: list[Result]) -> dict:
    return {r.name: r for r in results}


# --- d_model 8 vs 64 -------------------------------------------------------------------------------------

def width(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    return [run_gpt(lab, f"d_model {d}", corpus, changed(lab, n_embd=d, d_ff=4 * d)) for d in (8, 64)]


# --- 100 epochs ------------------------------------------------------------------------------------------

EPOCH_ROWS = (10, 30, 100)


def epochs(lab: Lab) -> list[Result]:
    """100 epochs on a slice of the training text small enough that 100 epochs take about the budget."""
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    s = lab.settings
    per_epoch = max(1, lab.budget // 100)
    # The slice holds per_epoch batches of windows: step 9's steps_per_epoch gives back per_epoch for it.
    corpus.train = corpus.train[:per_epoch * s.batch_size * s.block_size + s.block_size + 1]
    assert lab.steps.training.steps_per_epoch(len(corpus.train), s.batch_size, s.block_size) == per_epoch
    total = 100 * per_epoch
    rows = {epoch * per_epoch: epoch for epoch in EPOCH_ROWS}
    points = sorted(set(evaluation_steps(total, 20)) | set(rows))
    model = build_gpt(lab, s, corpus)
    results = []
    began = time.perf_counter()

    def snapshot(step: int) -> None:  # a row of the table at each of EPOCH_ROWS, measured on the way
        if step in rows:
            name = lab.words(f"epoch {rows[step]}", f"epoka {rows[step]}")
            results.append(measure(lab, name, model, corpus, s, time.perf_counter() - began, {}))

    curve = train(lab, model, corpus, s, total, points, snapshot)
    for r in results:
        r.curve, r.steps = curve, points
        r.extra = {lab.words("train tokens", "tokeny uczące"): f"{len(corpus.train):,}"}
    return results


def epochs_chart(lab: Lab, results: list[Result]) -> Chart:
    curve = results[-1].curve
    return Chart({lab.words("train", "trening"): curve["train"], lab.words("validation", "walidacja"): curve["val"]},
                 results[-1].steps, lab.words("step", "krok"), lab.words("loss", "strata"))


def overfitted(results: list[Result]) -> bool:
    val, train_ = results[-1].curve["val"], results[-1].curve["train"]
    best = min(range(len(val)), key=val.__getitem__)
    return val[-1] > val[best] + 0.02 and train_[-1] < train_[best]


# --- heads -----------------------------------------------------------------------------------------------

def heads(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    return [run_gpt(lab, f"{h} head{'s' if h > 1 else ''}" if lab.lang != "pl" else f"głowice: {h}", corpus,
                    changed(lab, n_head=h), hs=str(lab.settings.n_embd // h)) for h in (1, 4, 8)]


# --- how much text ---------------------------------------------------------------------------------------

def text_size(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    everything = corpus.train
    results = []
    for percent in (25, 50, 100):
        corpus.train = everything[:len(everything) * percent // 100]  # the start; validation stays the same
        results.append(run_gpt(lab, lab.words(f"{percent}% of the text", f"{percent}% tekstu"), corpus,
                               **{lab.words("train tokens", "tokeny uczące"): f"{len(corpus.train):,}"}))
    return results


# --- positions -------------------------------------------------------------------------------------------

def no_positions(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    return [run_gpt(lab, lab.words("learned positions", "wyuczone pozycje"), corpus),
            run_gpt(lab, lab.words("no positions", "bez pozycji"), corpus, swap=positions.without_positions)]


def sinusoidal(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    return [run_gpt(lab, lab.words("learned positions", "wyuczone pozycje"), corpus),
            run_gpt(lab, lab.words("sinusoidal positions", "pozycje sinusoidalne"), corpus,
                    swap=positions.with_sinusoids)]


# --- residual connections --------------------------------------------------------------------------------

def residual(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    return [run_gpt(lab, lab.words("residual connections", "połączenia rezydualne"), corpus),
            run_gpt(lab, lab.words("no residual connections", "bez połączeń rezydualnych"), corpus,
                    swap=lambda model: blocks.wrap_blocks(model, blocks.NoResidual))]


# --- post-norm vs pre-norm -------------------------------------------------------------------------------

DEEP_LAYERS = 8      # deep enough for the place of the LayerNorm to matter
# A post-norm stack needs a long warm-up (the original Transformer's was 4,000 steps): a third of the run here.
# At lr 1e-2 every post-norm run stalls at the unigram loss, warm-up or not; at the course's 3e-3 the warm-up
# is what lets it train.
LONG_WARMUP = 0.3


def norm(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    deep = changed(lab, n_layer=DEEP_LAYERS, warmup_fraction=LONG_WARMUP)  # --quick too: the notice says 8
    post = lambda model: blocks.wrap_blocks(model, blocks.PostNorm)
    results = []
    for name, swap in (("pre-norm", None), ("post-norm", post)):
        for warmup in (True, False):
            label = name + lab.words(", warm-up" if warmup else ", no warm-up",
                                     ", rozgrzewka" if warmup else ", bez rozgrzewki")
            results.append(run_gpt(lab, label, corpus, replace(deep, warmup=warmup), swap))
    return results


CLEAR_MARGIN = 0.05  # a difference in validation loss smaller than this is noise between seeds, not an effect


def post_norm_needs_warmup(results: list[Result]) -> bool:
    pre_warm, pre_cold, post_warm, post_cold = (r.val_loss for r in results)
    return post_cold > post_warm + CLEAR_MARGIN and post_cold > max(pre_warm, pre_cold) + CLEAR_MARGIN


# --- BPE vocabulary --------------------------------------------------------------------------------------

VOCABULARIES = (256, 512, 1024, 2048)


def vocabulary(lab: Lab) -> list[Result]:
    results = []
    for size in VOCABULARIES:
        corpus = make_corpus(lab.steps, lab.text, size)
        r = run_gpt(lab, f"vocab {corpus.tokenizer.vocab_size}", corpus,
                    **{lab.words("chars/token", "znaki/token"): f"{corpus.characters_per_token:.2f}"})
        r.curve["bpc"] = [loss / math.log(2) / corpus.characters_per_token for loss in r.curve["val"]]
        results.append(r)
    return results


def vocabulary_chart(lab: Lab, results: list[Result]) -> Chart:
    return Chart({r.name: r.curve["bpc"] for r in results}, results[0].steps, lab.words("step", "krok"),
                 lab.words("bits per character", "bity na znak"))


def compresses(results: list[Result]) -> bool:
    per_token = [float(next(iter(r.extra.values()))) for r in results]
    return all(a < b for a, b in zip(per_token, per_token[1:]))


# --- attention scale -------------------------------------------------------------------------------------

def scale(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    names = {"sqrt": "/ sqrt(hs)", "hs": "/ hs", "none": lab.words("no scale", "bez skalowania")}
    return [run_gpt(lab, names[s], corpus, swap=lambda model, s=s: attention.rescale_attention(model, s))
            for s in attention.SCALES]


# --- temperature -----------------------------------------------------------------------------------------

TEMPERATURES = (0.3, 0.8, 1.5)
TOP_RANKS = 20       # the chart shows the next token's likeliest 20 candidates


@torch.no_grad()
def draw(lab: Lab, model, corpus, temperature: float, n_tokens: int) -> tuple[list[int], float]:
    """n_tokens drawn at `temperature` (no top-k) from the prompt; and their surprisal: the mean -ln P of each
    drawn token under the model's own untempered distribution, in nats."""
    generation = lab.steps.generation
    idx = torch.tensor([corpus.tokenizer.encode(prompt_of(lab.text))], dtype=torch.long)
    generator = torch.Generator().manual_seed(lab.seed)
    surprisal = 0.0
    model.eval()
    for _ in range(n_tokens):
        logits = generation.next_token_logits(model, idx)  # (1, V)
        token = generation.sample_next(logits, temperature, generator=generator)  # (1, 1)
        surprisal -= torch.log_softmax(logits, dim=-1)[0, token[0, 0]].item()
        idx = torch.cat([idx, token], dim=1)
    return idx[0].tolist(), surprisal / max(1, n_tokens)


def temperature(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    s = lab.settings
    model = build_gpt(lab, s, corpus)
    began = time.perf_counter()
    curve = train(lab, model, corpus, s)
    trained = measure(lab, "", model, corpus, s, time.perf_counter() - began, curve)
    results = []
    for t in TEMPERATURES:
        ids, surprisal = draw(lab, model, corpus, t, s.sample_tokens)
        words = corpus.tokenizer.decode(ids).split()
        results.append(replace(trained, name=f"T = {t}", sample=printable(corpus.tokenizer.decode(ids)),
                               extra={lab.words("surprisal", "zaskoczenie"): f"{surprisal:.2f}",
                                      lab.words("distinct words", "różne słowa"):
                                          f"{len(set(words))}/{len(words)}"}))
    # The chart: the next token's probabilities after the prompt, likeliest first, at each temperature.
    prompt = torch.tensor([corpus.tokenizer.encode(prompt_of(lab.text))], dtype=torch.long)
    with torch.no_grad():
        logits = lab.steps.generation.next_token_logits(model, prompt)[0]
    for r, t in zip(results, TEMPERATURES):
        r.curve = {"probabilities": torch.softmax(logits / t, dim=-1).sort(descending=True).values[:TOP_RANKS].tolist()}
    return results


def temperature_chart(lab: Lab, results: list[Result]) -> Chart:
    ranks = len(results[0].curve["probabilities"])
    return Chart({r.name: r.curve["probabilities"] for r in results}, list(range(1, ranks + 1)),
                 lab.words("rank of the next token", "miejsce następnego tokenu"),
                 lab.words("probability", "prawdopodobieństwo"))


def surprisal_grows(results: list[Result]) -> bool:
    values = [float(next(iter(r.extra.values()))) for r in results]
    return all(a < b for a, b in zip(values, values[1:]))


# --- baselines -------------------------------------------------------------------------------------------

BIGRAM_SMOOTHING = 0.1   # added to every count, so that a pair never seen in training is not impossible
LSTM_LAYERS = 2
LSTM_LR = 3e-2  # the best of 3e-3, 1e-2 and 3e-2 for this LSTM on the bundled corpus (3e-3, the GPT's, barely moves it)


def baselines(lab: Lab) -> list[Result]:
    corpus = make_corpus(lab.steps, lab.text, lab.settings.vocab_size)
    s = lab.settings
    gpt = run_gpt(lab, "GPT", corpus)
    config = lab.steps.config.GPTConfig(block_size=s.block_size, vocab_size=corpus.tokenizer.vocab_size,
                                        n_layer=LSTM_LAYERS, n_embd=matching_hidden(
                                            corpus.tokenizer.vocab_size, LSTM_LAYERS, gpt.parameters))
    began = time.perf_counter()
    bigram = CountingBigram(config, corpus.train, BIGRAM_SMOOTHING)
    counted = measure(lab, lab.words("bigram (counted)", "bigram (zliczony)"), bigram, corpus, s,
                      time.perf_counter() - began, {})
    counted.curve = {"train": [counted.train_loss] * len(gpt.steps), "val": [counted.val_loss] * len(gpt.steps)}
    counted.steps = gpt.steps
    torch.manual_seed(lab.seed)
    lstm_model = LSTMModel(config)
    began = time.perf_counter()
    curve = train(lab, lstm_model, corpus, replace(s, lr=LSTM_LR))
    lstm = measure(lab, f"LSTM ({LSTM_LAYERS} x {config.n_embd})", lstm_model, corpus, s,
                   time.perf_counter() - began, curve)
    return [counted, lstm, gpt]


def beat_bigram(results: list[Result]) -> bool:
    bigram, lstm, gpt = results
    return lstm.val_loss < bigram.val_loss and gpt.val_loss < bigram.val_loss
