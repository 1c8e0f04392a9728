"""The reference tokenizer of step 1, loaded with GPT-2's released vocabulary, encodes exactly as GPT-2.

The oracle is Hugging Face `tokenizers`, built from the same vocab.json and merges.txt (ByteLevel
pre-tokenizer without a prefix space, ByteLevel decoder). Both files live in ../shared/data/gpt2 beside the
repository; the tests skip when they, or `tokenizers`, are absent.
"""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.step01_tokenizer import GPT2Tokenizer, bytes_to_unicode

GPT2_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gpt2"

TEXTS = [
    "Hello, world! This is GPT-2's tokenizer.",
    "The quick brown fox jumps over the lazy dog.\nA second line, and a third:\n\nafter a blank one.",
    "def merge(ids, pair, idx):\n    out = []\n    for i in range(len(ids)):\n\tout.append(ids[i])  # tab\n",
    "Numbers: 0 7 42 3.14159 1,000,000 2024-05-17 +48 600 700 800 0x1F",
    "Zażółć gęślą jaźń. Źdźbło, łódź i chrząszcz brzmi w trzcinie.",
    "Emoji 🙂👍🏽 and a family 👨‍👩‍👧 and flags 🇵🇱🇬🇧",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "spaces:   three,\t\ttabs,    four   \n\n\n   trailing   ",
    "I'm sure you're right, they'll say we've done it, he'd go, it's John's, don't",
    "I'M SHOUTING, YOU'RE NOT, 'TIS 'tis ''quoted'' 's",
    "",
    " ",
    "\n",
    "a",
    "<|endoftext|> is plain text to the tokenizer itself",
]


@pytest.fixture(scope="module")
def gpt2_pair():
    """(ours, theirs): GPT-2's 50,000 merges loaded once per module into each tokenizer."""
    vocab, merges = GPT2_DIR / "vocab.json", GPT2_DIR / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        pytest.skip(f"GPT-2's vocab.json and merges.txt are not in {GPT2_DIR}")
    tokenizers = pytest.importorskip("tokenizers")
    theirs = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(vocab), str(merges)))
    theirs.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    theirs.decoder = tokenizers.decoders.ByteLevel()
    ours = GPT2Tokenizer.from_files(vocab, merges)
    return ours, theirs


def test_bytes_to_unicode_spells_every_byte_with_a_distinct_printable_character():
    spelling = bytes_to_unicode()
    assert sorted(spelling) == list(range(256)), "every byte 0..255 needs a spelling"
    assert len(set(spelling.values())) == 256, "two bytes share a spelling"
    assert (spelling[ord("a")], spelling[32], spelling[10], spelling[0]) == ("a", "Ġ", "Ċ", "Ā")


def test_vocabulary_has_gpt2_size(gpt2_pair):
    ours, theirs = gpt2_pair
    assert ours.vocab_size == theirs.get_vocab_size() == 50257
    assert ours.tokenizer.vocab_size == 50256, "our vocabulary holds every token but <|endoftext|>"


@pytest.mark.parametrize("text", TEXTS)
def test_encode_gives_gpt2_ids(gpt2_pair, text):
    ours, theirs = gpt2_pair
    assert ours.encode(text) == theirs.encode(text).ids


def test_known_ids(gpt2_pair):
    """Ids anyone can look up in vocab.json: "Hello" 15496, "Ġworld" 995, "Ġ" (a space) 220, "!" 0."""
    ours, _ = gpt2_pair
    assert ours.encode("Hello world") == [15496, 995]
    assert ours.encode(" ") == [220]
    assert ours.encode("!") == [0]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_inverts_encode_with_gpt2_vocabulary(gpt2_pair, text):
    ours, theirs = gpt2_pair
    ids = ours.encode(text)
    assert ours.decode(ids) == text
    assert ours.decode(ids) == theirs.decode(ids)


@settings(max_examples=150)
@given(text=st.text(max_size=60))
def test_encode_gives_gpt2_ids_on_any_text(gpt2_pair, text):
    ours, theirs = gpt2_pair
    ids = ours.encode(text)
    assert ids == theirs.encode(text).ids
    assert ours.decode(ids) == text


@settings(max_examples=50)
@given(words=st.lists(st.sampled_from(["the", " the", "'s", " 12", "  ", "\n", "ą", "🙂", "don't", "!?", "x"]),
                      max_size=20))
def test_encode_gives_gpt2_ids_on_mixed_pieces(gpt2_pair, words):
    ours, theirs = gpt2_pair
    text = "".join(words)
    assert ours.encode(text) == theirs.encode(text).ids


def test_decode_refuses_the_special_token(gpt2_pair):
    ours, _ = gpt2_pair
    with pytest.raises(ValueError, match="50256"):
        ours.decode([15496, 50256])
