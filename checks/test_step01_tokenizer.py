"""Checks for step 1: the byte-level BPE tokenizer (exercises/step01_tokenizer.py).

Run them with `python course.py check 1`. Training texts are small so the whole file runs in about a second.

A message names a mistake only when the check has confirmed it: the oracles below are written out plainly here,
each with the usual wrong ways as switches, and a cause is named when the learner's result equals exactly one
wrong way's result on the very same text. Training builds on get_stats, merge and split_text, so a training
check first tries those parts and points at the one that is not right yet. Otherwise a message says plainly
what differs.
"""

import json
from functools import cache

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

# No "explain" phase: on a failure it costs seconds and would only add lines to the message.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]

# A small text to train on: plain ASCII English with contractions, numbers, punctuation and repeated words.
TRAIN_TEXT = (
    "The cat sat on the mat. The cat saw the rat, and the rat saw the cat.\n"
    "It's a small house, but it's ours: 3 rooms, 2 doors and 12 windows.\n"
    "We'll see the sea at 10, then we'll eat at the inn by the sea.\n\n"
    "She sells sea shells on the sea shore; the shells she sells are sea shells, I'm sure.\n"
    "Then there's the other thing: nothing is there that they'd rather hear than this.\n"
    "Tokens, tokens, tokens!  Tokenizers turn text into tokens,   and tokens into text.\n"
)

# Text beyond ASCII prose: Polish letters (2 bytes each), emoji (4 bytes, one joined by U+200D), Japanese and
# Chinese (3 bytes), and code indented with spaces and a tab, with blank lines and trailing spaces.
WORLD_TEXT = (
    "Zażółć gęślą jaźń. Źdźbło trawy, żółw i łódź; żółć, żółw, żółty.\n"
    "Pchnąć w tę łódź jeża lub ośm skrzyń fig. Cześć! Dzień dobry, dziękuję.\n"
    "🙂🙂 🙂 emoji 🐈🐈 and 👨‍👩‍👧 🙂🙂🙂\n"
    "日本語の文章、日本語の単語。中文文本，中文字符。東京と京都。\n"
    "\n\n\n"
    "def train(self, text):\n"
    "    for i in range(10):\n"
    "        if i % 2:\n"
    "            print(i)\n"
    "\n"
    "        \t\n"
    "    return  None  \n"
)

# The causes a message may name, each only once the check has seen that very mistake's result.
TIE_FIRST = "ties go to the pair counted first (max(stats, key=stats.get)), not to the smallest pair"
TIE_LARGEST = "ties go to the largest pair, not to the smallest: min(stats, key=lambda p: (-stats[p], p))"
LEAST = "training takes the least frequent pair: the count must be negated, key=lambda p: (-stats[p], p)"
NO_SPLIT = "a merge crossed a chunk boundary: split with split_text first and count pairs inside each chunk"
NOT_RECOUNTED = "the pairs are counted once, before the first merge: count them again after every merge"
STALE = "the counts of earlier rounds are kept: start every round from a new, empty dict of counts"
ONE_CHUNK_MERGED = "each merge is replaced in only one chunk: merge the pair in every chunk"
SKIP_SPACE = "the whitespace chunks are left out of training: every chunk of split_text counts, spaces too"
TRAIN_ORD = "training starts from code points (ord) instead of UTF-8 bytes: list(piece.encode('utf-8'))"
TOO_MANY = "training learns one merge too many: vocab_size - 256 merges, ids 256 .. vocab_size - 1"
TOO_FEW = "training learns one merge too few: vocab_size - 256 merges, ids 256 .. vocab_size - 1"
SWAPPED = "a merged token's bytes are joined in the wrong order: vocab[left] + vocab[right]"
NO_STOP = "training looks for the best of no pairs: when no chunk has a pair left, stop"
KEPT = "a second train keeps the merges of the first: start train from the 256 single bytes"

LEFTMOST = "encode merges the leftmost known pair, not the one learned first (the lowest id)"
LAST_FIRST = "encode merges the pair learned last first: take the lowest id, min(..., key=...)"
WHOLE_TEXT = "encode merged across chunks: split with split_text, then encode each chunk on its own"
TWO_LEFT = "a chunk of two tokens is never merged: keep merging while 2 or more tokens are left"
ENCODE_ORD = "encode starts from code points (ord) instead of UTF-8 bytes: list(chunk.encode('utf-8'))"

PER_TOKEN = "decode reads each token's bytes on its own: join all the bytes first and decode once"
IGNORED = "bytes that are not UTF-8 are dropped (errors='ignore'): they should become U+FFFD (errors='replace')"
STRICT = "decode raised UnicodeDecodeError: bytes that are not UTF-8 should become U+FFFD (errors='replace')"

OVERLAP = "after a match merge moves on by 1, so the pairs overlap: move on by 2"
DROPS_LAST = "merge drops the last id: keep looping while i < len(ids) and copy the last id"
PAST_END = "merge reads past the end of ids: test i + 1 < len(ids) before looking at ids[i + 1]"
IGNORES_COUNTS = "get_stats ignores the counts it is given: add into counts when it is not None"
SET_TO_ONE = "each pair is counted as 1 however often it occurs: counts[pair] = counts.get(pair, 0) + 1"
LAST_PAIR = "the last pair of ids is not counted: zip(ids, ids[1:]) gives every pair"
WHITESPACE_SPLIT = "split_text splits on whitespace (str.split): use GPT2_SPLIT.findall(text)"
SPACES_DROPPED = "split_text drops the whitespace chunks: keep every match of GPT2_SPLIT"

SORTED_BY_PAIR = "save writes the merges sorted by their pair, not by their id"
NO_VOCAB = "load leaves vocab with the 256 single bytes: add each merge's bytes, vocab[left] + vocab[right]"
FROM_ZERO = "load numbers the merges from 0: the i-th merge gets id 256 + i"


def lead(cause: str) -> str:
    return f"{cause}; " if cause else ""


def one_cause(found: dict) -> str:
    """The only cause whose result matched ("" when none did, or more than one)."""
    hits = [cause for cause, matched in found.items() if matched]
    return hits[0] if len(hits) == 1 else ""


@cache
def trained(step, vocab_size: int = 300, text: str = TRAIN_TEXT):
    """A tokenizer trained on text, made once per implementation, size and text (checks only read it)."""
    tokenizer = step.Tokenizer()
    tokenizer.train(text, vocab_size)
    return tokenizer


def hand_made(step, merges: dict[tuple[int, int], int]):
    """A Tokenizer with the given merges (in id order) and the vocab they imply, without training."""
    tokenizer = step.Tokenizer()
    for (left, right), idx in merges.items():
        tokenizer.merges[(left, right)] = idx
        tokenizer.vocab[idx] = tokenizer.vocab[left] + tokenizer.vocab[right]
    return tokenizer


# The oracles -----------------------------------------------------------------------------------------------

def plain_merge(ids, pair, idx, step_by=2):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(idx)
            i += step_by
        else:
            out.append(ids[i])
            i += 1
    return out


def chunks_of(step, text: str) -> list[str]:
    return step.GPT2_SPLIT.findall(text)  # the given pattern, not the learner's split_text


def simple_training(step, text: str, vocab_size: int, mistake: str = "") -> dict[tuple[int, int], int]:
    """The oracle: BPE training written out plainly, using this module's own rules; `mistake` is "" or a cause
    above, and then the training goes that wrong way."""
    pieces = chunks_of(step, text)
    if mistake == NO_SPLIT:
        pieces = [text]
    if mistake == SKIP_SPACE:
        pieces = [p for p in pieces if p.strip()]
    if mistake == TRAIN_ORD:
        chunks = [[ord(c) for c in p] for p in pieces]
    else:
        chunks = [list(p.encode("utf-8")) for p in pieces]
    rounds = vocab_size - 256 + {TOO_MANY: 1, TOO_FEW: -1}.get(mistake, 0)
    merges, stats = {}, {}
    first_counts = None
    for i in range(rounds):
        if mistake != STALE:
            stats = {}
        if mistake == NOT_RECOUNTED:
            if first_counts is None:
                first_counts = {}
                for ids in chunks:
                    for pair in zip(ids, ids[1:]):
                        first_counts[pair] = first_counts.get(pair, 0) + 1
            stats = {p: c for p, c in first_counts.items() if p not in merges}
        else:
            for ids in chunks:
                for pair in zip(ids, ids[1:]):
                    stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        if mistake == TIE_FIRST:
            pair = max(stats, key=stats.get)
        elif mistake == TIE_LARGEST:
            pair = max(stats, key=lambda p: (stats[p], p))
        elif mistake == LEAST:
            pair = min(stats, key=lambda p: (stats[p], p))
        else:
            pair = min(stats, key=lambda p: (-stats[p], p))  # most frequent; ties: the smallest pair
        idx = 256 + i
        merges[pair] = idx
        if mistake == ONE_CHUNK_MERGED:
            at = next((k for k, ids in enumerate(chunks) if pair in zip(ids, ids[1:])), None)
            if at is not None:
                chunks[at] = plain_merge(chunks[at], pair, idx)
        else:
            chunks = [plain_merge(ids, pair, idx) for ids in chunks]
    return merges


TRAINING_MISTAKES = (TIE_FIRST, TIE_LARGEST, LEAST, NO_SPLIT, NOT_RECOUNTED, STALE, ONE_CHUNK_MERGED, SKIP_SPACE,
                     TRAIN_ORD, TOO_MANY, TOO_FEW)


def broken_part(step) -> str:
    """The part train builds on that is not right yet, tried on small cases ("" when get_stats, merge and
    split_text all are): then a training check points there instead of guessing at train."""
    probes = [
        ("get_stats", lambda: step.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}),
        ("get_stats", lambda: step.get_stats([1, 2], {(1, 2): 1}) == {(1, 2): 2}),
        ("merge", lambda: step.merge([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]),
        ("merge", lambda: step.merge([3, 1, 2], (1, 2), 9) == [3, 9]),
        ("merge", lambda: step.merge([1, 2, 3, 1], (1, 2), 9) == [9, 3, 1]),
        ("split_text", lambda: step.split_text(WORLD_TEXT) == chunks_of(step, WORLD_TEXT)),
        ("split_text", lambda: step.split_text(TRAIN_TEXT) == chunks_of(step, TRAIN_TEXT)),
    ]
    for name, right in probes:
        try:
            if not right():
                return name
        except NotImplementedError:
            raise
        except Exception:
            return name
    return ""


def training_cause(step, text: str, vocab_size: int, got: dict) -> str:
    """Why training on text gave the merges `got`: a part not right yet, or the one mistake that gives them."""
    part = broken_part(step)
    if part:
        return f"train builds on {part}, which is not right yet: make the checks of {part} pass first"
    return one_cause({m: list(simple_training(step, text, vocab_size, m).items()) == list(got.items())
                      for m in TRAINING_MISTAKES})


def train(step, text: str, vocab_size: int, tokenizer=None):
    """tokenizer.train(text, vocab_size) on a new Tokenizer (or the one given), with the mistakes that raise
    named: a KeyError for a code point (training on ord), a ValueError from min() of no pairs."""
    tokenizer = step.Tokenizer() if tokenizer is None else tokenizer
    try:
        tokenizer.train(text, vocab_size)
    except KeyError as error:
        key = error.args[0] if error.args else None
        if isinstance(key, int) and key >= 256 and chr(key) in text and not broken_part(step):
            raise AssertionError(f"{TRAIN_ORD}; training on {text[:20]!r}... to {vocab_size} looked up "
                                 f"vocab[{key}], the code point of {chr(key)!r}") from error
        raise
    except ValueError as error:
        if "empty" in str(error) and not broken_part(step):
            raise AssertionError(f"{NO_STOP}; training on {text[:20]!r} to {vocab_size} raised "
                                 f"ValueError({error})") from error
        raise
    return tokenizer


def first_difference(expected: list, got: list) -> str:
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return (f"from merge {first} on: expected {expected[first:first + 3]}, got {got[first:first + 3]} "
            f"({len(expected)} merges expected, {len(got)} learned)")


def assert_trains_like_plain_bpe(step, text: str, vocab_size: int, what: str):
    """Training on text gives, merge for merge and in order, what the plain oracle above learns."""
    tokenizer = train(step, text, vocab_size)
    expected = list(simple_training(step, text, vocab_size).items())
    got = list(tokenizer.merges.items())
    assert got == expected, (
        f"{lead(training_cause(step, text, vocab_size, tokenizer.merges))}training on {what} to "
        f"vocab_size={vocab_size} learns other merges than plain BPE {first_difference(expected, got)}"
    )
    return tokenizer


def simple_encode(merges: dict, text: str, pieces: list[str], mistake: str = "") -> list[int]:
    """The oracle of encode: within each chunk, merge the pair learned first until none is in merges."""
    if mistake == WHOLE_TEXT:
        pieces = [text] if text else []
    ids = []
    for piece in pieces:
        tokens = [ord(c) for c in piece] if mistake == ENCODE_ORD else list(piece.encode("utf-8"))
        while len(tokens) > (2 if mistake == TWO_LEFT else 1):
            known = [p for p in zip(tokens, tokens[1:]) if p in merges]
            if not known:
                break
            if mistake == LEFTMOST:
                pair = known[0]
            elif mistake == LAST_FIRST:
                pair = max(known, key=merges.get)
            else:
                pair = min(known, key=merges.get)
            tokens = plain_merge(tokens, pair, merges[pair])
        ids.extend(tokens)
    return ids


def encode_cause(step, merges: dict, text: str, got: list) -> str:
    pieces = chunks_of(step, text)
    if step.split_text(text) != pieces:
        return "encode builds on split_text, which is not right yet: make the checks of split_text pass first"
    return one_cause({m: simple_encode(merges, text, pieces, m) == got
                      for m in (LEFTMOST, LAST_FIRST, WHOLE_TEXT, TWO_LEFT, ENCODE_ORD)})


def decode_cause(vocab: dict, ids: list, got: str) -> str:
    joined = b"".join(vocab[i] for i in ids)
    if got == joined.decode("utf-8", errors="replace"):
        return ""  # decode is right for this vocab: the vocab itself is wrong
    return one_cause({PER_TOKEN: got == "".join(vocab[i].decode("utf-8", errors="replace") for i in ids),
                      IGNORED: got == joined.decode("utf-8", errors="ignore")})


def decode(step, tokenizer, ids: list) -> str:
    try:
        return tokenizer.decode(ids)
    except UnicodeDecodeError as error:
        raise AssertionError(f"{STRICT}; decode({ids[:8]}{'...' if len(ids) > 8 else ''}) raised {error}") from error


def assert_round_trip(step, tokenizer, text: str):
    ids = tokenizer.encode(text)
    assert isinstance(ids, list) and all(isinstance(i, int) and 0 <= i < tokenizer.vocab_size for i in ids), (
        f"{lead(encode_cause(step, tokenizer.merges, text, ids))}encode({text[:30]!r}) gave {str(ids)[:80]}: "
        f"every token should be an int id below vocab_size={tokenizer.vocab_size}")
    want = simple_encode(tokenizer.merges, text, chunks_of(step, text))
    assert ids == want, (
        f"{lead(encode_cause(step, tokenizer.merges, text, ids))}encode({text[:30]!r}) should be "
        f"{str(want)[:80]}, got {str(ids)[:80]}")
    for (left, right), idx in tokenizer.merges.items():
        joined = tokenizer.vocab[left] + tokenizer.vocab[right]
        if tokenizer.vocab.get(idx) != joined:
            swapped = tokenizer.vocab.get(idx) == tokenizer.vocab[right] + tokenizer.vocab[left]
            raise AssertionError(f"{lead(SWAPPED if swapped else '')}vocab[{idx}] is {tokenizer.vocab.get(idx)!r}, "
                                 f"expected vocab[{left}] + vocab[{right}] = {joined!r}")
    got = decode(step, tokenizer, ids)
    assert got == text, (
        f"{lead(decode_cause(tokenizer.vocab, ids, got))}decode(encode(text)) is not the text: "
        f"{text[:30]!r} -> {str(ids)[:60]} -> {got[:30]!r}")


# get_stats and merge --------------------------------------------------------------------------------------

def test_get_stats_counts_neighbouring_pairs(step):
    """[1, 2, 3, 1, 2] has neighbours (1,2), (2,3), (3,1), (1,2): so (1, 2) twice, the others once."""
    cases = [[1, 2, 3, 1, 2], [7, 7, 7], [1, 2, 1, 2, 3], [4, 5], [], [5]]
    got = [step.get_stats(list(ids)) for ids in cases]
    for ids, counts in zip(cases, got):
        pairs = list(zip(ids, ids[1:]))
        want = {p: pairs.count(p) for p in pairs}
        if counts != want:
            cause = one_cause({
                SET_TO_ONE: all(c == {p: 1 for p in zip(i, i[1:])} for i, c in zip(cases, got)),
                LAST_PAIR: all(c == {p: list(zip(i, i[1:]))[:-1].count(p) for p in list(zip(i, i[1:]))[:-1]}
                               for i, c in zip(cases, got))})
            raise AssertionError(f"{lead(cause)}get_stats({ids}) should be {want}, got {counts}")


def test_get_stats_adds_into_the_counts_it_is_given(step):
    """Counting chunk after chunk into one dict: {(1, 2): 1} plus [1, 2, 3] -> {(1, 2): 2, (2, 3): 1}."""
    counts = {(1, 2): 1}
    got = step.get_stats([1, 2, 3], counts)
    if got is not counts and counts == {(1, 2): 1}:
        raise AssertionError(f"{IGNORES_COUNTS}; get_stats([1, 2, 3], {{(1, 2): 1}}) returned {got} and left "
                             f"the given dict as it was")
    assert got is counts, "get_stats(ids, counts) should return the very dict it was given, not a new one"
    assert counts == {(1, 2): 2, (2, 3): 1}, (
        f"get_stats([1, 2, 3], {{(1, 2): 1}}) should make the given dict {{(1, 2): 2, (2, 3): 1}}, got {counts}")


def merge_cause(ids, pair, got) -> str:
    return one_cause({OVERLAP: got == plain_merge(ids, pair, 9, step_by=1),
                      DROPS_LAST: len(ids) > 0 and got == plain_merge(ids[:-1], pair, 9)})


def merged(step, ids, pair):
    try:
        return step.merge(ids, pair, 9)
    except IndexError as error:
        if ids and ids[-1] == pair[0]:
            raise AssertionError(f"{PAST_END}; merge({ids}, {pair}, 9) raised IndexError({error})") from error
        raise


def test_merge_replaces_every_occurrence(step):
    """[1, 2, 3, 1, 2] with (1, 2) -> 4: both (1, 2) become 4, the 3 stays: [4, 3, 4]."""
    got = step.merge([1, 2, 3, 1, 2], (1, 2), 4)
    assert got == [4, 3, 4], f"merge([1, 2, 3, 1, 2], (1, 2), 4) should be [4, 3, 4], got {got}"


@pytest.mark.parametrize("ids, pair, expected, case", [
    pytest.param([], (1, 2), [], "an empty list", id="empty"),
    pytest.param([5], (5, 5), [5], "a single id", id="one id"),
    pytest.param([3, 1, 3], (1, 2), [3, 1, 3], "the pair does not occur", id="no occurrence"),
    pytest.param([2, 1], (1, 2), [2, 1], "the pair's ids in the other order", id="reversed"),
    pytest.param([3, 1, 2], (1, 2), [3, 9], "the pair ends the list", id="at the end"),
    pytest.param([1, 2, 3], (1, 2), [9, 3], "the pair starts the list", id="at the start"),
    pytest.param([3, 1], (1, 2), [3, 1], "the list ends with the pair's first id", id="half a pair at the end"),
    pytest.param([1, 1, 1], (1, 1), [9, 1], "'aaa': left to right, each id used once", id="aaa"),
    pytest.param([1, 1, 1, 1], (1, 1), [9, 9], "'aaaa': two matches, side by side", id="aaaa"),
])
def test_merge_handles_edge_cases(step, ids, pair, expected, case):
    before = list(ids)
    got = merged(step, ids, pair)
    assert got == expected, (
        f"{lead(merge_cause(before, pair, got))}merge({before}, {pair}, 9) should be {expected} ({case}), got {got}")
    assert ids == before, f"merge changed its input list {before} into {ids}: build and return a new list"


# split_text -----------------------------------------------------------------------------------------------

def split_cause(step, text, got) -> str:
    want = chunks_of(step, text)
    return one_cause({WHITESPACE_SPLIT: got == text.split(), SPACES_DROPPED: got == [c for c in want if c.strip()]})


@pytest.mark.parametrize("text, chunks", [
    pytest.param("Hello world", ["Hello", " world"], id="a space joins the next word"),
    pytest.param("I'm here, they'll go", ["I", "'m", " here", ",", " they", "'ll", " go"], id="contractions"),
    pytest.param("year 2024!", ["year", " 2024", "!"], id="a number"),
    pytest.param("3.14", ["3", ".", "14"], id="a decimal point"),
    pytest.param("a  b", ["a", " ", " b"], id="two spaces"),                    # the last space joins "b"
    pytest.param("end  \n", ["end", "  \n"], id="trailing whitespace"),
    pytest.param("x\n\ny", ["x", "\n", "\n", "y"], id="a blank line"),
    pytest.param("hi!!! ...", ["hi", "!!!", " ..."], id="runs of punctuation"),
    pytest.param("Zażółć gęślą", ["Zażółć", " gęślą"], id="Polish letters"),    # \p{L}: a letter of any script
    pytest.param("日本語の文章、中文", ["日本語の文章", "、", "中文"], id="Japanese and Chinese"),
    pytest.param("🙂🙂 ok", ["🙂🙂", " ok"], id="emoji"),                       # an emoji is no letter: punctuation
    pytest.param("if x:\n    y()\n", ["if", " x", ":", "\n   ", " y", "()", "\n"], id="indented code"),
    pytest.param("", [], id="empty"),
])
def test_split_text_follows_gpt2_pattern(step, text, chunks):
    got = step.split_text(text)
    assert got == chunks, f"{lead(split_cause(step, text, got))}split_text({text!r}) should be {chunks}, got {got}"


@settings(max_examples=100, phases=PHASES)
@given(text=st.text(max_size=40))
def test_split_text_keeps_every_character(step, text):
    chunks = step.split_text(text)
    assert "".join(chunks) == text, (
        f"{lead(split_cause(step, text, chunks))}the chunks of {text!r} do not join back into it: {chunks}; "
        f"split_text must lose no character")


# train ----------------------------------------------------------------------------------------------------

def test_training_reproduces_the_hand_example(step):
    """"aaabdaaabac" (a=97, b=98, c=99, d=100) is one chunk. Training to 259 makes three merges:
        pairs: (97,97) x4, (97,98) x2, the rest x1         -> (97, 97) = 256 "aa"
        [256, 97, 98, 100, 256, 97, 98, 97, 99]: (256,97) x2 and (97,98) x2 tie; (97, 98) is the smaller
                                                            -> (97, 98) = 257 "ab"
        [256, 257, 100, 256, 257, 97, 99]: (256,257) x2    -> (256, 257) = 258 "aaab"
    and "aaabdaaabac" then encodes as [258, 100, 258, 97, 99].
    """
    tokenizer = train(step, "aaabdaaabac", 259)
    expected = {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert list(tokenizer.merges.items()) == list(expected.items()), (
        f"{lead(training_cause(step, 'aaabdaaabac', 259, tokenizer.merges))}training 'aaabdaaabac' to 259 "
        f"should learn {expected} (see the docstring), got {tokenizer.merges}")
    got = [tokenizer.vocab.get(i) for i in (256, 257, 258)]
    if got == [b"aa", b"ba", b"abaa"]:
        raise AssertionError(f"{SWAPPED}; vocab[256..258] are {got}, expected [b'aa', b'ab', b'aaab']")
    assert got == [b"aa", b"ab", b"aaab"], (
        f"vocab[256..258] should be [b'aa', b'ab', b'aaab'], got {got}: a merged token's bytes are its two "
        f"tokens' bytes joined")
    got = tokenizer.encode("aaabdaaabac")
    assert got == [258, 100, 258, 97, 99], (
        f"{lead(encode_cause(step, expected, 'aaabdaaabac', got))}encode('aaabdaaabac') should be "
        f"[258, 100, 258, 97, 99], got {got}")


def test_training_breaks_ties_by_the_smallest_pair(step):
    """"dc ab" splits into "dc" and " ab": pairs (100,99), (32,97), (97,98), each seen once.
    All tie, so the smallest tuple goes first: (32, 97) = 256, then (100, 99) = 257, then (256, 98) = 258.
    """
    tokenizer = train(step, "dc ab", 259)
    order = list(tokenizer.merges.items())
    expected = [((32, 97), 256), ((100, 99), 257), ((256, 98), 258)]
    assert order == expected, (
        f"{lead(training_cause(step, 'dc ab', 259, tokenizer.merges))}three pairs seen once each in 'dc ab': "
        f"expected the merges {expected}, got {order}")


def test_training_matches_a_straightforward_oracle(step):
    assert_trains_like_plain_bpe(step, TRAIN_TEXT, 300, "an English text")


@pytest.mark.parametrize("text, vocab_size", [
    pytest.param(WORLD_TEXT, 330, id="Polish, emoji, CJK and code"),
    pytest.param("żółw żółć żółty łódź łódka", 270, id="Polish"),
    pytest.param("🙂🙂🙂 🐈🐈 🙂 👨‍👩‍👧‍👦👨‍👩‍👧", 275, id="emoji"),
    pytest.param("日本語の日本語、中文中文。東京", 275, id="Japanese and Chinese"),
    pytest.param("def f(x):\n\n    if x:\n        return x\n\n\n    return  0  \n\t\n", 275, id="indented code"),
])
def test_training_beyond_ascii_matches_the_oracle(step, text, vocab_size):
    """Multi-byte characters make many pairs of equal count (the bytes of one character always come together),
    so this is where the tie rule and the pre-split are tried hardest."""
    tokenizer = assert_trains_like_plain_bpe(step, text, vocab_size, f"{text[:12]!r}...")
    assert_round_trip(step, tokenizer, text)


def test_training_honours_vocab_size(step):
    tokenizer = train(step, TRAIN_TEXT, 300)
    ids = list(tokenizer.merges.values())
    assert tokenizer.vocab_size == 300 and ids == list(range(256, 300)), (
        f"{lead(training_cause(step, TRAIN_TEXT, 300, tokenizer.merges))}training to vocab_size=300 should "
        f"learn 44 merges with ids 256 .. 299 in order; got a vocabulary of {tokenizer.vocab_size} and "
        f"{len(ids)} merges with ids {ids[:3]}...{ids[-3:]}")
    for (left, right), idx in tokenizer.merges.items():
        joined = tokenizer.vocab[left] + tokenizer.vocab[right]
        if tokenizer.vocab[idx] != joined and tokenizer.vocab[idx] == tokenizer.vocab[right] + tokenizer.vocab[left]:
            raise AssertionError(f"{SWAPPED}; vocab[{idx}] is {tokenizer.vocab[idx]!r}, expected {joined!r}")
        assert tokenizer.vocab[idx] == joined, (
            f"vocab[{idx}] is {tokenizer.vocab[idx]!r}, expected vocab[{left}] + vocab[{right}] = {joined!r}")


@pytest.mark.parametrize("vocab_size", [256, 257])
def test_training_to_256_learns_nothing_and_to_257_one_merge(step, vocab_size):
    """256 is the smallest vocabulary, the bytes alone: no merge. 257 adds exactly the most frequent pair,
    here (32, 116) " t", seen 13 times."""
    try:
        tokenizer = train(step, TRAIN_TEXT, vocab_size)
    except ValueError as error:
        raise AssertionError(f"train(text, vocab_size={vocab_size}) raised ValueError({error}): only a "
                             f"vocab_size under 256 is refused") from error
    expected = list(simple_training(step, TRAIN_TEXT, vocab_size).items())
    got = list(tokenizer.merges.items())
    assert got == expected and tokenizer.vocab_size == vocab_size, (
        f"{lead(training_cause(step, TRAIN_TEXT, vocab_size, tokenizer.merges))}training to "
        f"vocab_size={vocab_size} should learn {expected}, got {got[:3]}{'...' if len(got) > 3 else ''} "
        f"(a vocabulary of {tokenizer.vocab_size})")


def test_training_stops_when_no_pair_is_left(step):
    for text, vocab_size in [("ab", 300), ("", 300), ("x.y,z", 300), ("日", 300), ("abc", 256)]:
        tokenizer = train(step, text, vocab_size)
        expected = list(simple_training(step, text, vocab_size).items())
        assert list(tokenizer.merges.items()) == expected, (
            f"{lead(training_cause(step, text, vocab_size, tokenizer.merges))}training on {text!r} to "
            f"{vocab_size} should learn {expected} and stop there, got {tokenizer.merges}")


def test_merges_never_cross_chunk_boundaries(step):
    """"ab.ab.ab." splits into "ab", ".", "ab", ".", "ab", ".": the only pair inside a chunk is (97, 98).
    Without the split, the text is one list [256, 46, 256, 46, 256, 46] after that, and (256, 46) "ab."
    (seen 3 times) would come next.
    """
    tokenizer = train(step, "ab.ab.ab.", 260)
    assert tokenizer.merges == {(97, 98): 256}, (
        f"{lead(training_cause(step, 'ab.ab.ab.', 260, tokenizer.merges))}training 'ab.ab.ab.' to 260 should "
        f"learn only {{(97, 98): 256}} (the one pair inside a chunk), got {tokenizer.merges}")
    chunks = [piece.encode("utf-8") for piece in chunks_of(step, TRAIN_TEXT)]
    tokenizer = trained(step)
    for idx in tokenizer.merges.values():
        token = tokenizer.vocab[idx]
        assert any(token in chunk for chunk in chunks), (
            f"{lead(training_cause(step, TRAIN_TEXT, 300, tokenizer.merges))}token {idx} = {token!r} lies in no "
            f"chunk of the training text")


def test_a_second_training_starts_from_the_bytes(step):
    """One Tokenizer trained twice: the second training must give what a new Tokenizer learns from its text."""
    tokenizer = train(step, TRAIN_TEXT, 280)
    first = dict(tokenizer.merges)
    train(step, "aaabdaaabac", 259, tokenizer)
    expected = {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    if tokenizer.merges != expected and any(pair in tokenizer.merges for pair in set(first) - set(expected)):
        raise AssertionError(f"{KEPT}; after training on the English text and then on 'aaabdaaabac', merges "
                             f"holds {len(tokenizer.merges)} pairs, expected the 3 of the docstring")
    assert tokenizer.merges == expected and tokenizer.vocab_size == 259, (
        f"training again on 'aaabdaaabac' to 259 should leave merges {expected} and 259 tokens, got "
        f"{tokenizer.merges} and {tokenizer.vocab_size} tokens")


@pytest.mark.parametrize("vocab_size", [255, 100, 0, -1])
def test_vocab_size_under_256_is_refused(step, vocab_size):
    try:
        step.Tokenizer().train("some text", vocab_size)
    except ValueError as error:
        message = str(error)
    else:
        pytest.fail(f"train(text, vocab_size={vocab_size}) should raise ValueError: a vocabulary needs at least "
                    "256 tokens, one for each byte")
    assert str(vocab_size) in message and "256" in message, (
        f"the ValueError for vocab_size={vocab_size} should name the value and the minimum 256, got: {message}")


# encode and decode ----------------------------------------------------------------------------------------

def test_encode_applies_the_earliest_learned_merge_first(step):
    """Merges {(98, 99): 256, (97, 98): 257}: "abc" = [97, 98, 99] has both (97, 98) and (98, 99).
    (98, 99) was learned first (256 < 257), so "abc" -> [97, 256], not [257, 99].
    And with {(97, 97): 256, (256, 97): 257}: "aaa" -> [256, 97] -> [257], a merge built on an earlier one.
    """
    cases = [({(98, 99): 256, (97, 98): 257}, "abc", [97, 256]),
             ({(97, 97): 256, (256, 97): 257}, "aaa", [257]),
             ({(97, 98): 256, (98, 99): 257}, "abc", [256, 99]),
             ({(97, 98): 256}, "ab", [256])]
    got = [hand_made(step, merges).encode(text) for merges, text, _ in cases]
    for (merges, text, want), ids in zip(cases, got):
        if ids != want:
            cause = one_cause({m: all(simple_encode(mg, t, chunks_of(step, t), m) == g
                                      for (mg, t, _), g in zip(cases, got))
                               for m in (LEFTMOST, LAST_FIRST, WHOLE_TEXT, TWO_LEFT, ENCODE_ORD)})
            raise AssertionError(f"{lead(cause)}encode({text!r}) with merges {merges} should be {want}, got {ids}")


def test_encode_keeps_chunks_apart(step):
    """With the merge (97, 32) "a " in hand, "a b" still splits into "a" and " b", so it is not used."""
    got = hand_made(step, {(97, 32): 256}).encode("a b")
    assert got == [97, 32, 98], (
        f"{lead(encode_cause(step, {(97, 32): 256}, 'a b', got))}encode('a b') with the merge 'a ' should be "
        f"[97, 32, 98], got {got}")


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("\n", id="a newline"),
    pytest.param("a", id="one letter"),
    pytest.param("ą", id="a 2-byte letter"),
    pytest.param("🙂", id="an emoji"),
    pytest.param("日本語", id="Japanese"),
    pytest.param("The cat sat.", id="English"),
    pytest.param("  trailing  \n\n", id="whitespace runs"),
    pytest.param("don't stop", id="a contraction"),
    pytest.param("Zażółć gęślą jaźń", id="Polish"),
    pytest.param("👨‍👩‍👧 family", id="joined emoji"),
    pytest.param("mixed: 3 cats 🐈, 2 kotów, 1 猫\r\n", id="mixed"),
    pytest.param("def f():\n\n\treturn  1\n    \n", id="code"),
])
def test_round_trip_on_chosen_texts(step, text):
    assert_round_trip(step, trained(step), text)


def test_round_trip_with_merges_of_many_bytes(step):
    """Trained on WORLD_TEXT, tokens hold whole Polish letters, CJK characters and emoji, or parts of them."""
    tokenizer = trained(step, 330, WORLD_TEXT)
    for text in (WORLD_TEXT, "żółw 🙂🙂 日本語の", "    return  None  \n\n", "Łódź 東京 🐈"):
        assert_round_trip(step, tokenizer, text)


@settings(max_examples=150, phases=PHASES)
@given(text=st.text(max_size=50))
def test_round_trip_on_any_text(step, text):
    assert_round_trip(step, trained(step), text)


def test_unseen_characters_fall_back_to_bytes(step):
    """The training text is ASCII; "ż" is the two bytes [197, 188] and "🙂" the four [240, 159, 153, 130]."""
    tokenizer = trained(step)
    text = "ż🙂"
    ids = tokenizer.encode(text)
    assert ids == [197, 188, 240, 159, 153, 130], (
        f"{lead(encode_cause(step, tokenizer.merges, text, ids))}characters never seen in training should encode "
        f"as their UTF-8 bytes [197, 188, 240, 159, 153, 130], got {ids}")
    got = decode(step, tokenizer, ids)
    assert got == text, f"{lead(decode_cause(tokenizer.vocab, ids, got))}decode({ids}) should be {text!r}, got {got!r}"


def test_decode_joins_bytes_before_reading_utf8(step):
    """"ż" is [197, 188]: neither byte is a character alone, so decode must join all bytes, then read them."""
    tokenizer = step.Tokenizer()
    got = decode(step, tokenizer, [197, 188])
    assert got == "ż", f"{lead(decode_cause(tokenizer.vocab, [197, 188], got))}decode([197, 188]) should be 'ż', got {got!r}"


@pytest.mark.parametrize("ids, expected", [
    pytest.param([226, 130], "\ufffd", id="half a character"),  # the first two of the three bytes of "€"
    pytest.param([255, 97], "\ufffda", id="byte 255"),          # 255 never occurs in UTF-8
    pytest.param([], "", id="no ids"),
])
def test_decode_replaces_invalid_utf8(step, ids, expected):
    tokenizer = step.Tokenizer()
    got = decode(step, tokenizer, ids)
    assert got == expected, (
        f"{lead(decode_cause(tokenizer.vocab, ids, got))}decode({ids}) should be {expected!r}, got {got!r}")


def test_larger_vocab_compresses_more(step):
    small, large = trained(step, 280), trained(step, 400)
    n_bytes = len(TRAIN_TEXT.encode("utf-8"))
    n_small, n_large = len(small.encode(TRAIN_TEXT)), len(large.encode(TRAIN_TEXT))
    assert n_large < n_small < n_bytes, (
        f"more merges should mean fewer tokens: {n_bytes} bytes -> {n_small} tokens at vocab 280 -> "
        f"{n_large} tokens at vocab 400")


# save and load --------------------------------------------------------------------------------------------

def test_save_then_load_reproduces_encode(step, tmp_path):
    """First two merges of bytes only, (97, 98) = 256 and (99, 100) = 257; then a tokenizer trained on WORLD_TEXT."""
    path = tmp_path / "tokenizer.json"
    small = {(97, 98): 256, (99, 100): 257}
    hand_made(step, small).save(path)
    loaded = step.Tokenizer.load(path)
    if loaded.merges == {(97, 98): 0, (99, 100): 1}:
        raise AssertionError(f"{FROM_ZERO}; saved {small}, loaded {loaded.merges}")
    assert loaded.merges == small, f"saved the merges {small}, loaded {loaded.merges}"
    tokenizer = trained(step, 330, WORLD_TEXT)
    tokenizer.save(path)
    loaded = step.Tokenizer.load(path)
    assert isinstance(loaded, step.Tokenizer), f"Tokenizer.load should return a Tokenizer, got {type(loaded)}"
    if loaded.merges != tokenizer.merges and loaded.merges == {p: i - 256 for p, i in tokenizer.merges.items()}:
        raise AssertionError(f"{FROM_ZERO}; the first loaded merge has id {min(loaded.merges.values())}")
    assert loaded.merges == tokenizer.merges, (
        f"the loaded merges differ from the saved ones: {len(loaded.merges)} loaded, {len(tokenizer.merges)} saved")
    if loaded.vocab != tokenizer.vocab and len(loaded.vocab) == 256:
        raise AssertionError(f"{NO_VOCAB}; the loaded vocab has 256 tokens, the saved tokenizer {tokenizer.vocab_size}")
    assert loaded.vocab == tokenizer.vocab, "the loaded vocab differs from the saved tokenizer's"
    for text in (WORLD_TEXT, TRAIN_TEXT, "The sea shells, 2024 🙂", ""):
        assert loaded.encode(text) == tokenizer.encode(text), f"the loaded tokenizer encodes {text[:30]!r} differently"


def test_saved_file_is_json_with_merges_in_order(step, tmp_path):
    tokenizer = trained(step)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data.get("format") == step.TOKENIZER_FORMAT and data.get("version") == step.TOKENIZER_VERSION, (
        f"the saved file should carry \"format\": {step.TOKENIZER_FORMAT!r} and \"version\": "
        f"{step.TOKENIZER_VERSION}, got {data.get('format')!r} and {data.get('version')!r}")
    expected = [list(pair) for pair, _ in sorted(tokenizer.merges.items(), key=lambda item: item[1])]
    got = data.get("merges")
    if got != expected and got == sorted(expected):
        raise AssertionError(f"{SORTED_BY_PAIR}; the file starts {got[:3]}, merge 256 is {expected[0]}")
    assert got == expected, (
        f"\"merges\" should list [left, right] by id, 256 first: expected {expected[:3]}..., got {str(got)[:60]}")


@pytest.mark.parametrize("content", [
    pytest.param(b"hello, I am not JSON", id="plain text"),
    pytest.param(b"[1, 2]", id="a JSON list"),
    pytest.param(b'{"format": "something else", "merges": []}', id="another format"),
    pytest.param(b"\xff\xfe\x00", id="not UTF-8"),
])
def test_load_refuses_a_file_that_is_not_a_tokenizer(step, tmp_path, content):
    path = tmp_path / "notes.json"
    path.write_bytes(content)
    try:
        step.Tokenizer.load(path)
    except ValueError as error:
        message = str(error)
    else:
        pytest.fail(f"Tokenizer.load read a file holding {content!r} without complaint: it should raise "
                    "ValueError (read_tokenizer_file checks the file for you)")
    assert "tokenizer" in message, (
        f"loading a file that is no tokenizer should raise a clear ValueError (read_tokenizer_file's), got: {message}")


# GPT-2's file format --------------------------------------------------------------------------------------

def test_gpt2_format_vocabulary_runs_your_encode(step, tmp_path):
    """A tiny vocabulary in GPT-2's format: bytes spelled by bytes_to_unicode (the space is "Ġ"), the 256
    single bytes numbered in reverse (byte b is id 255 - b), then merges.txt lines "Ġ t", "h e", "Ġt he"
    making ids 256, 257, 258. Your encode runs inside: " the" -> [258]; " tea" -> [256, 154, 158].
    """
    spelling = step.bytes_to_unicode()
    vocab = {spelling[b]: 255 - b for b in range(256)}
    vocab.update({"Ġt": 256, "he": 257, "Ġthe": 258})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\nh e\nĠt he\n", encoding="utf-8")
    gpt2 = step.GPT2Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    for text, expected in [(" the", [258]), (" tea", [256, 255 - ord("e"), 255 - ord("a")])]:
        got = gpt2.encode(text)
        assert got == expected, f"with a GPT-2-format vocabulary, {text!r} should encode as {expected}, got {got}"
        assert gpt2.decode(got) == text, f"with a GPT-2-format vocabulary, {text!r} did not round-trip"
