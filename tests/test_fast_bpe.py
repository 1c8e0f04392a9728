"""The fast trainer and encoder (solutions/_fast_bpe.py) agree with step 1's plain Tokenizer.train and encode.

Tokenizer.train is what the learner writes and reads; the direct modes use train_fast on long texts. Both
must learn the same merges in the same order, ties and overlapping pairs included, on any text whose chunks
are at most MAX_CHUNK_BYTES long; encode_fast must give the ids of encode on any text at all.
"""

import random
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions._fast_bpe import MAX_CHUNK_BYTES, encode_fast, pieces, train_fast
from solutions.step01_tokenizer import Tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus_pl.txt"

TEXTS = {
    "hand example": "aaabdaaabac",
    "every pair ties": "dc ab",
    "overlapping pairs": "aaaa aaa aaaaa aa a aaaaaaa",
    "overlapping after merges": "abababab ababa bab abab",
    "unicode": "Zażółć gęślą jaźń 🙂🙂 日本語の日本 👨‍👩‍👧 żółw żółty",
    "punctuation and spaces": "hi!!! ... ?!?! \n\n\n   x   y\t\tz 3.14 2024 42 42",
    "no pair at all": "a b c . , !",
    "empty": "",
}


def both(text: str, vocab_size: int) -> tuple[Tokenizer, Tokenizer]:
    plain, fast = Tokenizer(), Tokenizer()
    plain.train(text, vocab_size)
    train_fast(fast, text, vocab_size)
    return plain, fast


def assert_same_merges(plain: Tokenizer, fast: Tokenizer, what: str) -> None:
    a, b = list(plain.merges.items()), list(fast.merges.items())
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert a == b, (f"on {what}, train_fast differs from Tokenizer.train from merge {first} on: "
                    f"{a[first:first + 3]} against {b[first:first + 3]}")
    assert plain.vocab == fast.vocab, f"on {what}, the two vocabularies differ"


@pytest.mark.parametrize("name", TEXTS)
def test_fast_training_learns_the_plain_merges(name):
    assert_same_merges(*both(TEXTS[name], 300), repr(name))


def test_fast_training_learns_the_plain_merges_on_the_polish_corpus():
    assert_same_merges(*both(CORPUS.read_text(encoding="utf-8")[:6000], 320), "the Polish corpus")


def test_fast_training_learns_the_plain_merges_on_shakespeare():
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} is not there")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:20_000]
    assert_same_merges(*both(text, 330), "a slice of tinyshakespeare")


@settings(max_examples=60)
@given(text=st.text(alphabet="ab ć.", max_size=60), vocab_size=st.integers(256, 290))
def test_fast_training_learns_the_plain_merges_on_any_small_text(text, vocab_size):
    # A small alphabet makes ties, overlaps ("aaa") and repeats common.
    assert_same_merges(*both(text, vocab_size), repr(text))


def test_a_long_chunk_is_cut_into_pieces():
    """"a" * 600 is one chunk of 600 bytes: two pieces of MAX_CHUNK_BYTES (256) and one of 88."""
    assert MAX_CHUNK_BYTES == 256
    assert pieces("a" * 600) == {b"a" * 256: 2, b"a" * 88: 1}
    assert pieces("ab ab") == {b"ab": 1, b" ab": 1}
    fast = Tokenizer()
    train_fast(fast, "x" * 5000 + " yz" * 10, 400)
    longest = max(len(token) for token in fast.vocab.values())
    assert longest <= MAX_CHUNK_BYTES, f"a token of {longest} bytes spans a cut"


def test_a_long_single_word_trains_quickly():
    """200 KB without a space is one chunk; cut into pieces it costs about what ordinary text costs."""
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefgh") for _ in range(200_000))
    fast = Tokenizer()
    train_fast(fast, word, 300)  # the suite's 10-second timeout stops a quadratic trainer
    assert fast.vocab_size == 300


def test_progress_is_told_how_many_merges_are_done():
    calls = []
    train_fast(Tokenizer(), TEXTS["overlapping after merges"] * 3 + TEXTS["unicode"], 456,
               progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 200), f"the first call should be (0, 200), got {calls[0]}"
    dones = [done for done, _ in calls]
    assert dones == sorted(dones) and all(total == 200 for _, total in calls), calls
    assert len(calls) <= 102, f"progress was called {len(calls)} times; about once per hundredth is enough"
    learned = Tokenizer()
    train_fast(learned, TEXTS["overlapping after merges"] * 3 + TEXTS["unicode"], 456)
    assert calls[-1][0] == len(learned.merges), f"the last call should report every merge learned: {calls[-1]}"


def test_fast_training_refuses_a_vocab_under_256():
    with pytest.raises(ValueError, match="255"):
        train_fast(Tokenizer(), "some text", 255)


@pytest.mark.parametrize("name", [*TEXTS, "long chunks"])
def test_fast_encoding_gives_the_ids_of_encode(name):
    trained = Tokenizer()
    train_fast(trained, CORPUS.read_text(encoding="utf-8") + " aaaa" * 50 + " abab" * 50, 400)
    text = TEXTS.get(name) or ("a" * 3000 + " " + "ab" * 700 + " żółw" * 3 + "abc" * 300)
    assert encode_fast(trained, text) == trained.encode(text), f"encode_fast and encode disagree on {name!r}"


@settings(max_examples=60)
@given(text=st.text(alphabet="ab ć.", max_size=80))
def test_fast_encoding_gives_the_ids_of_encode_on_any_small_text(text):
    trained = small_tokenizer()
    assert encode_fast(trained, text) == trained.encode(text), f"encode_fast and encode disagree on {text!r}"


@cache
def small_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer()
    train_fast(tokenizer, "aaaa ab abab ćć ća aba. ..a bbb " * 5, 290)
    return tokenizer
