"""Checks for step 1: the byte-level BPE tokenizer (exercises/step01_tokenizer.py).

Run them with `python course.py check 1`. Training texts are small so the whole file runs in about a second.
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


@cache
def trained(step, vocab_size: int = 300):
    """A tokenizer trained on TRAIN_TEXT, made once per implementation and vocab size (checks only read it)."""
    tokenizer = step.Tokenizer()
    tokenizer.train(TRAIN_TEXT, vocab_size)
    return tokenizer


def hand_made(step, merges: dict[tuple[int, int], int]):
    """A Tokenizer with the given merges (in id order) and the vocab they imply, without training."""
    tokenizer = step.Tokenizer()
    for (left, right), idx in merges.items():
        tokenizer.merges[(left, right)] = idx
        tokenizer.vocab[idx] = tokenizer.vocab[left] + tokenizer.vocab[right]
    return tokenizer


def simple_training(step, text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """The oracle: BPE training written out plainly, with no shortcut, using this module's own rules."""
    chunks = [list(piece.encode("utf-8")) for piece in step.GPT2_SPLIT.findall(text)]
    merges = {}
    for idx in range(256, vocab_size):
        stats = {}
        for ids in chunks:
            for pair in zip(ids, ids[1:]):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))  # most frequent; ties: the smallest pair
        merges[pair] = idx
        new_chunks = []
        for ids in chunks:
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(idx)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            new_chunks.append(out)
        chunks = new_chunks
    return merges


# get_stats and merge

def test_get_stats_counts_neighbouring_pairs(step):
    """[1, 2, 3, 1, 2] has neighbours (1,2), (2,3), (3,1), (1,2): so (1, 2) twice, the others once."""
    got = step.get_stats([1, 2, 3, 1, 2])
    assert got == {(1, 2): 2, (2, 3): 1, (3, 1): 1}, (
        f"get_stats([1, 2, 3, 1, 2]) should be {{(1, 2): 2, (2, 3): 1, (3, 1): 1}}, got {got}")
    assert step.get_stats([7, 7, 7]) == {(7, 7): 2}, "[7, 7, 7] holds the pair (7, 7) twice (positions 0-1 and 1-2)"
    for ids in ([], [5]):
        assert step.get_stats(ids) == {}, f"get_stats({ids}) should be {{}}: fewer than two ids make no pair"


def test_get_stats_adds_into_the_counts_it_is_given(step):
    """Counting chunk after chunk into one dict: {(1, 2): 1} plus [1, 2, 3] -> {(1, 2): 2, (2, 3): 1}."""
    counts = {(1, 2): 1}
    got = step.get_stats([1, 2, 3], counts)
    assert got is counts, "get_stats(ids, counts) should add into counts and return that same dict, not a new one"
    assert counts == {(1, 2): 2, (2, 3): 1}, (
        f"get_stats([1, 2, 3], {{(1, 2): 1}}) should add to the counts there: expected "
        f"{{(1, 2): 2, (2, 3): 1}}, got {counts}")


def test_merge_replaces_every_occurrence(step):
    """[1, 2, 3, 1, 2] with (1, 2) -> 4: both (1, 2) become 4, the 3 stays: [4, 3, 4]."""
    got = step.merge([1, 2, 3, 1, 2], (1, 2), 4)
    assert got == [4, 3, 4], f"merge([1, 2, 3, 1, 2], (1, 2), 4) should be [4, 3, 4], got {got}"


@pytest.mark.parametrize("ids, pair, expected, case", [
    pytest.param([], (1, 2), [], "an empty list", id="empty"),
    pytest.param([5], (5, 5), [5], "a single id", id="one id"),
    pytest.param([3, 1, 3], (1, 2), [3, 1, 3], "no occurrence of the pair", id="no occurrence"),
    pytest.param([2, 1], (1, 2), [2, 1], "the pair's ids in the wrong order", id="reversed"),
    pytest.param([3, 1, 2], (1, 2), [3, 9], "the pair at the very end", id="at the end"),
    pytest.param([1, 2, 3], (1, 2), [9, 3], "the pair at the very start", id="at the start"),
    pytest.param([1, 1, 1], (1, 1), [9, 1], "overlapping pairs in 'aaa': left to right, each id used once",
                 id="aaa"),
    pytest.param([1, 1, 1, 1], (1, 1), [9, 9], "overlapping pairs in 'aaaa'", id="aaaa"),
])
def test_merge_handles_edge_cases(step, ids, pair, expected, case):
    before = list(ids)
    got = step.merge(ids, pair, 9)
    assert got == expected, f"merge({before}, {pair}, 9) should be {expected} ({case}), got {got}"
    assert ids == before, f"merge changed its input list {before} into {ids}: build and return a new list"


# split_text

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
    pytest.param("", [], id="empty"),
])
def test_split_text_follows_gpt2_pattern(step, text, chunks):
    got = step.split_text(text)
    assert got == chunks, f"split_text({text!r}) should be {chunks}, got {got}: use the regex GPT2_SPLIT_PATTERN"


@settings(max_examples=100, phases=PHASES)
@given(text=st.text(max_size=40))
def test_split_text_keeps_every_character(step, text):
    chunks = step.split_text(text)
    assert "".join(chunks) == text, (
        f"the chunks of {text!r} do not join back into it: {chunks}; split_text must lose no character")


# train

def test_training_reproduces_the_hand_example(step):
    """"aaabdaaabac" (a=97, b=98, c=99, d=100) is one chunk. Training to 259 makes three merges:
        pairs: (97,97) x4, (97,98) x2, the rest x1         -> (97, 97) = 256 "aa"
        [256, 97, 98, 100, 256, 97, 98, 97, 99]: (256,97) x2 and (97,98) x2 tie; (97, 98) is the smaller
                                                            -> (97, 98) = 257 "ab"
        [256, 257, 100, 256, 257, 97, 99]: (256,257) x2    -> (256, 257) = 258 "aaab"
    and "aaabdaaabac" then encodes as [258, 100, 258, 97, 99].
    """
    tokenizer = step.Tokenizer()
    tokenizer.train("aaabdaaabac", 259)
    expected = {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tokenizer.merges == expected, (
        f"training 'aaabdaaabac' to 259 should learn {expected}, got {tokenizer.merges}: "
        "most frequent pair first, ties to the smallest pair")
    assert [tokenizer.vocab[i] for i in (256, 257, 258)] == [b"aa", b"ab", b"aaab"], (
        "vocab[256..258] should be b'aa', b'ab', b'aaab': a merged token's bytes are its two tokens' bytes joined")
    got = tokenizer.encode("aaabdaaabac")
    assert got == [258, 100, 258, 97, 99], f"encode('aaabdaaabac') should be [258, 100, 258, 97, 99], got {got}"


def test_training_breaks_ties_by_the_smallest_pair(step):
    """"dc ab" splits into "dc" and " ab": pairs (100,99), (32,97), (97,98), each seen once.
    All tie, so the smallest tuple goes first: (32, 97) = 256, then (100, 99) = 257, then (256, 98) = 258.
    """
    tokenizer = step.Tokenizer()
    tokenizer.train("dc ab", 259)
    order = list(tokenizer.merges.items())
    expected = [((32, 97), 256), ((100, 99), 257), ((256, 98), 258)]
    assert order == expected, (
        f"pairs seen equally often should be taken smallest first, min(stats, key=lambda p: (-stats[p], p)): "
        f"expected {expected}, got {order}")


def test_training_matches_a_straightforward_oracle(step):
    expected = list(simple_training(step, TRAIN_TEXT, 300).items())
    got = list(trained(step).merges.items())
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    assert got == expected, (
        f"the merges learned differ from plain BPE from merge {first} on: expected "
        f"{expected[first:first + 3]}, got {got[first:first + 3]}; count pairs over all chunks, most frequent first")


def test_training_honours_vocab_size(step):
    tokenizer = trained(step, 300)
    assert tokenizer.vocab_size == 300, f"training to vocab_size=300 gave a vocabulary of {tokenizer.vocab_size}"
    ids = list(tokenizer.merges.values())
    assert ids == list(range(256, 300)), (
        f"training to 300 should learn 44 merges with ids 256..299 in order, got {len(ids)} with ids "
        f"{ids[:3]}...{ids[-3:]}")
    for (left, right), idx in tokenizer.merges.items():
        assert tokenizer.vocab[idx] == tokenizer.vocab[left] + tokenizer.vocab[right], (
            f"vocab[{idx}] is not vocab[{left}] + vocab[{right}]: a merged token's bytes are its pair's joined")


def test_training_stops_when_no_pair_is_left(step):
    for text, vocab_size, expected in [("ab", 300, 257), ("", 300, 256), ("x.y,z", 300, 256), ("abc", 256, 256)]:
        tokenizer = step.Tokenizer()
        try:
            tokenizer.train(text, vocab_size)
        except ValueError as error:
            pytest.fail(f"training on {text!r} to {vocab_size} raised ValueError ({error}): when no pair is left, "
                        "stop early instead of looking for the best of no pairs")
        assert tokenizer.vocab_size == expected, (
            f"training on {text!r} to {vocab_size} should stop at {expected} tokens, got {tokenizer.vocab_size}")


def test_merges_never_cross_chunk_boundaries(step):
    """"ab.ab.ab." splits into "ab", ".", "ab", ".", "ab", ".": the only pair inside a chunk is (97, 98).
    Without the split, the text is one list [256, 46, 256, 46, 256, 46] after that, and (256, 46) "ab."
    (seen 3 times) would come next.
    """
    tokenizer = step.Tokenizer()
    tokenizer.train("ab.ab.ab.", 260)
    assert tokenizer.merges == {(97, 98): 256}, (
        f"a merge crossed a chunk boundary: training 'ab.ab.ab.' should learn only {{(97, 98): 256}}, got "
        f"{tokenizer.merges}; split with split_text first and count pairs inside each chunk")
    chunks = [piece.encode("utf-8") for piece in step.GPT2_SPLIT.findall(TRAIN_TEXT)]
    for idx in trained(step).merges.values():
        token = trained(step).vocab[idx]
        assert any(token in chunk for chunk in chunks), (
            f"a merge crossed a chunk boundary: token {idx} = {token!r} lies in no chunk of the training text")


@pytest.mark.parametrize("vocab_size", [100, 255, 0, -1])
def test_vocab_size_under_256_is_refused(step, vocab_size):
    try:
        step.Tokenizer().train("some text", vocab_size)
    except ValueError as error:
        message = str(error)
    else:
        pytest.fail(f"train(text, vocab_size={vocab_size}) should raise ValueError: a vocabulary needs at least "
                    "256 tokens, one token per byte")
    assert str(vocab_size) in message and "256" in message, (
        f"the ValueError for vocab_size={vocab_size} should name the value and the minimum 256, got: {message}")


# encode and decode

def test_encode_applies_the_earliest_learned_merge_first(step):
    """Merges {(98, 99): 256, (97, 98): 257}: "abc" = [97, 98, 99] has both (97, 98) and (98, 99).
    (98, 99) was learned first (256 < 257), so "abc" -> [97, 256], not [257, 99].
    And with {(97, 97): 256, (256, 97): 257}: "aaa" -> [256, 97] -> [257], a merge built on an earlier one.
    """
    got = hand_made(step, {(98, 99): 256, (97, 98): 257}).encode("abc")
    assert got == [97, 256], (
        f"encode('abc') with merges {{(98, 99): 256, (97, 98): 257}} should be [97, 256], got {got}: "
        "apply the merge learned first (lowest id), not the leftmost pair")
    got = hand_made(step, {(97, 97): 256, (256, 97): 257}).encode("aaa")
    assert got == [257], (
        f"encode('aaa') with merges {{(97, 97): 256, (256, 97): 257}} should be [257], got {got}: "
        "keep merging until no pair of the chunk is in merges")


def test_encode_keeps_chunks_apart(step):
    """With the merge (97, 32) "a " in hand, "a b" still splits into "a" and " b", so it is not used."""
    got = hand_made(step, {(97, 32): 256}).encode("a b")
    assert got == [97, 32, 98], (
        f"encode('a b') with the merge 'a ' should be [97, 32, 98], got {got}: split with split_text, then "
        "encode each chunk on its own")


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
])
def test_round_trip_on_chosen_texts(step, text):
    tokenizer = trained(step)
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tokenizer.vocab_size for i in ids), (
        f"encode({text!r}) gave {ids}: every token should be an int id below vocab_size={tokenizer.vocab_size}")
    got = tokenizer.decode(ids)
    assert got == text, f"decode(encode(text)) is not the text: {text!r} -> {ids} -> {got!r}"


@settings(max_examples=150, phases=PHASES)
@given(text=st.text(max_size=50))
def test_round_trip_on_any_text(step, text):
    tokenizer = trained(step)
    ids = tokenizer.encode(text)
    got = tokenizer.decode(ids)
    assert got == text, f"decode(encode(text)) is not the text: {text!r} -> {ids} -> {got!r}"


def test_unseen_characters_fall_back_to_bytes(step):
    """The training text is ASCII; "ż" is the two bytes [197, 188] and "🙂" the four [240, 159, 153, 130]."""
    tokenizer = trained(step)
    text = "ż🙂"
    ids = tokenizer.encode(text)
    assert ids == [197, 188, 240, 159, 153, 130], (
        f"characters never seen in training should encode as their UTF-8 bytes [197, 188, 240, 159, 153, 130], "
        f"got {ids}")
    assert tokenizer.decode(ids) == text, f"{text!r} did not survive decode(encode(...)): got {tokenizer.decode(ids)!r}"


def test_decode_joins_bytes_before_reading_utf8(step):
    """"ż" is [197, 188]: neither byte is a character alone, so decode must join all bytes, then read them."""
    tokenizer = step.Tokenizer()
    got = tokenizer.decode([197, 188])
    assert got == "ż", (
        f"decode([197, 188]) should be 'ż', got {got!r}: join all the bytes first and decode once, not token by token")


@pytest.mark.parametrize("ids, expected", [
    pytest.param([226, 130], "\ufffd", id="half a character"),  # the first two of the three bytes of "€"
    pytest.param([255, 97], "\ufffda", id="byte 255"),          # 255 never occurs in UTF-8
    pytest.param([], "", id="no ids"),
])
def test_decode_replaces_invalid_utf8(step, ids, expected):
    try:
        got = step.Tokenizer().decode(ids)
    except UnicodeDecodeError as error:
        pytest.fail(f"decode({ids}) raised {error}: bytes that are not UTF-8 should become U+FFFD "
                    "(errors='replace'), since a model may well produce them")
    assert got == expected, f"decode({ids}) should be {expected!r} (U+FFFD for bad bytes), got {got!r}"


def test_larger_vocab_compresses_more(step):
    small, large = trained(step, 280), trained(step, 400)
    n_bytes = len(TRAIN_TEXT.encode("utf-8"))
    n_small, n_large = len(small.encode(TRAIN_TEXT)), len(large.encode(TRAIN_TEXT))
    assert n_large < n_small < n_bytes, (
        f"more merges should mean fewer tokens: {n_bytes} bytes -> {n_small} tokens at vocab 280 -> "
        f"{n_large} tokens at vocab 400; is every learned merge applied when encoding?")


# save and load

def test_save_then_load_reproduces_encode(step, tmp_path):
    tokenizer = trained(step)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    loaded = step.Tokenizer.load(path)
    assert isinstance(loaded, step.Tokenizer), f"Tokenizer.load should return a Tokenizer, got {type(loaded)}"
    assert loaded.merges == tokenizer.merges, (
        "the loaded merges differ from the saved ones: the i-th saved merge should get id 256 + i")
    assert loaded.vocab == tokenizer.vocab, "the loaded vocab differs: rebuild vocab[idx] from each merge's pair"
    for text in (TRAIN_TEXT, "The sea shells, 2024 🙂", ""):
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
    assert data.get("merges") == expected, (
        f"\"merges\" should list [left, right] in the order learned (id 256 first): expected {expected[:3]}..., "
        f"got {str(data.get('merges'))[:60]}")


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


# GPT-2's file format

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
