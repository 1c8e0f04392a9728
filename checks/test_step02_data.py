"""Checks for step 2: the data pipeline.

Most checks use token arrays whose values tell their positions: data[i] = i + OFFSET. A window's first value
then names its start, an off-by-one shows up as a wrong number, and a batch of positions (instead of the
tokens at those positions) cannot pass for tokens.
"""

import tracemalloc

import numpy as np
import pytest
import torch

OFFSET = 1000
BIG = 10_000_000  # tokens in the large-text checks: 20 MB as uint16


def text(n: int, dtype=np.uint16) -> np.ndarray:
    """n tokens with data[i] = i + OFFSET, so a value gives its position back."""
    return (np.arange(n) + OFFSET).astype(dtype)


def windows_count(n: int, block_size: int) -> int:
    """Counted one start at a time: start i needs tokens i .. i + block_size, all inside the text."""
    return sum(1 for i in range(n) if i + block_size <= n - 1)


def batch(step, data, block_size, batch_size, seed=0):
    return step.get_batch(data, block_size, batch_size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def big_text():
    """Ten million uint16 tokens, data[i] = i mod 65536, so consecutive tokens differ by 1 (mod 65536)."""
    return np.resize(np.arange(65536, dtype=np.uint16), BIG)  # 0, 1, ..., 65535, 0, 1, ...


# as_token_array -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vocab_size, dtype", [
    (256, np.uint16), (512, np.uint16), (50257, np.uint16), (65536, np.uint16),
    (65537, np.int32), (100277, np.int32),
])
def test_as_token_array_picks_uint16_up_to_65536_tokens_and_int32_beyond(step, vocab_size, dtype):
    arr = step.as_token_array([0, 1, vocab_size - 1], vocab_size)
    assert isinstance(arr, np.ndarray), f"as_token_array should return a numpy array, got {type(arr).__name__}"
    assert arr.dtype == dtype, (
        f"vocab_size={vocab_size} should give {np.dtype(dtype).name}, got {arr.dtype}\n"
        f"uint16 holds ids 0 .. 65535, so it fits any vocabulary of up to 65536 tokens (vocab_size <= 2**16); "
        f"bigger ones need int32"
    )


@pytest.mark.parametrize("ids, vocab_size", [
    ([5, 0, 511], 512),
    (list(range(512)), 512),
    ((7, 7, 3), 512),
    (np.array([0, 65535, 1234], dtype=np.int64), 65536),
    ([70000, 0, 99999], 100000),
    ([], 512),
])
def test_as_token_array_keeps_every_id_in_order(step, ids, vocab_size):
    arr = step.as_token_array(ids, vocab_size)
    want = [int(i) for i in ids]
    assert isinstance(arr, np.ndarray) and arr.shape == (len(want),), (
        f"expected a 1-D numpy array of {len(want)} ids, got {type(arr).__name__} of shape "
        f"{getattr(arr, 'shape', None)}"
    )
    assert arr.tolist() == want, (
        f"the ids changed on the way into the array: expected {want[:8]}..., got {arr.tolist()[:8]}...\n"
        f"convert with .astype(dtype); do not sort, clip or rescale"
    )


@pytest.mark.parametrize("ids, vocab_size, bad", [
    ([3, 512], 512, 512),
    ([-1, 4], 512, -1),
    ([3, 70000], 65536, 70000),
    ([1, 2, 100000], 100000, 100000),
])
def test_as_token_array_refuses_ids_outside_the_vocabulary(step, ids, vocab_size, bad):
    try:
        arr = step.as_token_array(ids, vocab_size)
    except ValueError as e:
        assert str(bad) in str(e), f"the ValueError should name the bad id {bad}; it says: {e}"
    else:
        raise AssertionError(
            f"as_token_array accepted id {bad} with vocab_size={vocab_size}: raise ValueError for ids outside "
            f"0 .. vocab_size - 1\nit stored {arr.tolist()}; uint16 would silently wrap 70000 to 4464"
        )


# train_val_split ------------------------------------------------------------------------------------------

def test_train_val_split_hand_example(step):
    """10 tokens [0 .. 9]:
    val_fraction=0.1 -> n_train = int(10 * 0.9) = 9 -> train [0 .. 8], val [9]
    val_fraction=0.5 -> n_train = int(10 * 0.5) = 5 -> train [0 .. 4], val [5 .. 9]
    no val_fraction  -> the default 0.1, as the first case
    """
    data = np.arange(10, dtype=np.uint16)
    for args, want_train, want_val in [((0.1,), list(range(9)), [9]),
                                       ((0.5,), list(range(5)), list(range(5, 10))),
                                       ((), list(range(9)), [9])]:
        train, val = step.train_val_split(data, *args)
        assert (train.tolist(), val.tolist()) == (want_train, want_val), (
            f"train_val_split(data=[0 .. 9]{', ' if args else ''}{', '.join(map(str, args))}) should give "
            f"train {want_train} and val {want_val}\ngot {train.tolist()} and {val.tolist()}: the first "
            f"int(n * (1 - val_fraction)) tokens train, the rest validate"
        )


@pytest.mark.parametrize("n, val_fraction", [(1000, 0.1), (1001, 0.1), (97, 0.25), (10, 0.3), (5000, 0.05)])
def test_train_val_split_keeps_the_order_and_every_token(step, n, val_fraction):
    data = text(n)
    train, val = step.train_val_split(data, val_fraction)
    assert len(train) + len(val) == n, (
        f"train ({len(train)}) + val ({len(val)}) should hold all {n} tokens: tokens were lost or repeated"
    )
    assert np.array_equal(np.concatenate([train, val]), data), (
        "train must be the first part of the text and val the last, in their original order: do not shuffle"
    )
    assert abs(len(val) - n * val_fraction) <= 1, (
        f"val should hold about val_fraction={val_fraction} of the {n} tokens ({n * val_fraction:g}), "
        f"got {len(val)}: is the fraction applied to the wrong part?\n"
        f"the first int(n * (1 - val_fraction)) tokens train, the rest validate"
    )


def test_train_val_split_returns_views_not_copies(step):
    data = text(1000)
    train, val = step.train_val_split(data, 0.1)
    for name, part in [("train", train), ("val", val)]:
        assert isinstance(part, np.ndarray) and np.shares_memory(part, data), (
            f"{name} is a copy of the tokens, not a view: slice data (data[:n_train], data[n_train:])\n"
            f"np.array(...), .copy() or a shuffle copy the whole text"
        )
        assert part.dtype == data.dtype, f"{name} changed dtype from {data.dtype} to {part.dtype}: keep the slices"


@pytest.mark.parametrize("val_fraction", [0, 1, 0.0, 1.0, -0.1, 1.5])
def test_train_val_split_refuses_fractions_outside_zero_to_one(step, val_fraction):
    with pytest.raises(ValueError) as info:
        step.train_val_split(text(100), val_fraction)
    assert str(val_fraction) in str(info.value), (
        f"the ValueError should name the bad val_fraction {val_fraction}; it says: {info.value}"
    )


# num_windows ----------------------------------------------------------------------------------------------

def test_num_windows_hand_example(step):
    """n_tokens=10, block_size=4: starts 0, 1, 2, 3, 4, 5 -> 6 windows (start 5 reads tokens 5 .. 9).
    n_tokens=5 -> 1 window (tokens 0 .. 4); n_tokens=4 -> 0 (the last target, token 4, is missing).
    """
    for n, want in [(10, 6), (5, 1), (4, 0)]:
        got = step.num_windows(n, 4)
        assert got == want, (
            f"num_windows({n}, block_size=4) should be {want}, got {got}: a window needs block_size + 1 tokens\n"
            f"x takes block_size tokens and y reaches one further, so there are n_tokens - block_size windows"
        )


@pytest.mark.parametrize("block_size", [1, 2, 4, 64])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 10, 64, 65, 1000])
def test_num_windows_matches_counting_the_windows_one_by_one(step, n, block_size):
    got = step.num_windows(n, block_size)
    want = windows_count(n, block_size)
    assert isinstance(got, (int, np.integer)), f"num_windows should return an int, got {type(got).__name__}"
    assert got >= 0, (
        f"num_windows({n}, {block_size}) is {got}: a text shorter than one window holds 0 windows, never fewer"
    )
    assert got == want, (
        f"num_windows({n}, {block_size}) should be {want}, got {got}: a window needs block_size + 1 tokens\n"
        f"count the starts 0, 1, ... for which start + block_size is still a token of the text"
    )


# get_window -----------------------------------------------------------------------------------------------

def test_get_window_hand_example(step):
    """data = [10, 11, ..., 19], block_size = 4:
    i=0 -> x = data[0:4] = [10, 11, 12, 13], y = data[1:5]  = [11, 12, 13, 14]
    i=5 -> x = data[5:9] = [15, 16, 17, 18], y = data[6:10] = [16, 17, 18, 19]   (ends at the last token)
    """
    data = np.arange(10, 20, dtype=np.uint16)
    for i, want_x, want_y in [(0, [10, 11, 12, 13], [11, 12, 13, 14]), (5, [15, 16, 17, 18], [16, 17, 18, 19])]:
        x, y = step.get_window(data, i, 4)
        assert x.tolist() == want_x, f"window {i}: x should be data[{i}:{i + 4}] = {want_x}, got {x.tolist()}"
        assert y.tolist() == want_y, (
            f"window {i}: y is not x shifted by one: y should be data[{i + 1}:{i + 5}] = {want_y}\n"
            f"got {y.tolist()}"
        )


@pytest.mark.parametrize("block_size", [1, 3, 11])
def test_y_is_x_shifted_by_one_in_every_window(step, block_size):
    n = 12
    data = text(n)
    for i in range(windows_count(n, block_size)):
        x, y = step.get_window(data, i, block_size)
        assert x.tolist() == data[i:i + block_size].tolist(), (
            f"window {i}: x should be data[{i} : {i} + block_size]\n"
            f"got the tokens at positions {[v - OFFSET for v in x.tolist()]}"
        )
        assert y.tolist() == data[i + 1:i + 1 + block_size].tolist(), (
            f"window {i}: y is not x shifted by one: y[0] should be data[{i + 1}], y[-1] data[{i + block_size}]\n"
            f"got the tokens at positions {[v - OFFSET for v in y.tolist()]}"
        )


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_get_window_returns_long_tensors_of_length_block_size(step, dtype):
    x, y = step.get_window(text(20, dtype), 3, 7)
    for name, t in [("x", x), ("y", y)]:
        assert isinstance(t, torch.Tensor), f"{name} should be a torch.Tensor, got {type(t).__name__}"
        assert tuple(t.shape) == (7,), f"{name} should have shape (block_size,) = (7,), got {tuple(t.shape)}"
        assert t.dtype == torch.long, (
            f"{name} is {t.dtype}, expected torch.long (int64): embedding layers need long ids\n"
            f"convert with .astype(np.int64) before torch.from_numpy"
        )


@pytest.mark.parametrize("n, block_size, i", [(10, 4, 6), (10, 4, -1), (10, 4, 100), (4, 4, 0)])
def test_get_window_refuses_starts_that_do_not_exist(step, n, block_size, i):
    last = n - block_size - 1
    try:
        got = step.get_window(text(n), i, block_size)
    except IndexError as e:
        assert str(i) in str(e), f"the IndexError should name the bad start i={i}; it says: {e}"
        if last >= 0:
            assert str(last) in str(e), f"the IndexError should give the valid range 0 .. {last}; it says: {e}"
    else:
        raise AssertionError(
            f"get_window(i={i}) with {n} tokens and block_size={block_size} should raise IndexError (and mind i < 0)\n"
            f"only starts 0 .. {last} exist (num_windows of them); it returned x = {got[0].tolist()}"
        )


# get_batch ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size, block_size, n, dtype", [
    (4, 7, 50, np.uint16), (1, 1, 2, np.uint16), (3, 1, 10, np.int32), (2, 9, 10, np.uint16),
    (5, 64, 1000, np.uint16),
])
def test_batch_has_shape_batch_by_block_and_dtype_long(step, batch_size, block_size, n, dtype):
    x, y = batch(step, text(n, dtype), block_size, batch_size)
    for name, t in [("x", x), ("y", y)]:
        assert isinstance(t, torch.Tensor), f"{name} should be a torch.Tensor, got {type(t).__name__}"
        assert tuple(t.shape) == (batch_size, block_size), (
            f"{name} has shape {tuple(t.shape)}, expected (B, T) = {(batch_size, block_size)}\n"
            f"one row per window, block_size tokens per row"
        )
        assert t.dtype == torch.long, (
            f"{name} is {t.dtype}, expected torch.long (int64): embedding layers need long ids\n"
            f"convert the gathered windows with .astype(np.int64)"
        )


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_every_row_of_a_batch_is_a_window_and_its_shifted_targets(step, dtype):
    n, block_size, batch_size = 300, 10, 16
    data = text(n, dtype)
    x, y = batch(step, data, block_size, batch_size, seed=3)
    for b in range(batch_size):
        start = int(x[b, 0]) - OFFSET
        assert 0 <= start <= n - block_size - 1 and x[b].tolist() == data[start:start + block_size].tolist(), (
            f"row {b} of x is not a window of the text: did you return the positions instead of data[positions]?\n"
            f"x[b] should be data[s : s + block_size] for a start s; got {x[b].tolist()}"
        )
        assert y[b].tolist() == data[start + 1:start + 1 + block_size].tolist(), (
            f"row {b}: y is not x shifted by one: y[b, 0] should be data[s + 1] = {int(data[start + 1])}, "
            f"got {int(y[b, 0])}\nuse the same starts for y, one token later: data[idx + 1]"
        )


def test_batch_starts_cover_every_window_including_the_last(step):
    """8 tokens, block_size 3: starts 0 .. 4 (5 windows; start 4 reads tokens 4 .. 7, the last one).
    Drawn 1000 times, each start should come up about 200 times, and no other start ever.
    """
    n, block_size, draws = 8, 3, 1000
    try:
        x, _ = batch(step, text(n), block_size, draws, seed=1)
    except NotImplementedError:
        raise
    except Exception as e:  # an out-of-range start usually fails deep inside numpy or torch.stack
        raise AssertionError(
            f"get_batch failed on 8 tokens with block_size 3: does randint draw starts past the last window?\n"
            f"{type(e).__name__}: {e}\nrandint's upper bound is excluded, so it should be len(data) - block_size"
        ) from e
    starts = x[:, 0] - OFFSET
    counts = torch.bincount(starts.clamp(min=0), minlength=n)
    assert starts.min() >= 0 and starts.max() <= n - block_size - 1, (
        f"a start of {int(starts.max())} was drawn, but the last window starts at {n - block_size - 1}\n"
        f"randint's upper bound is excluded, so it should be len(data) - block_size"
    )
    assert counts[n - block_size - 1] > 0, (
        "the last window is never drawn: is the upper bound of randint off by one?\n"
        f"the last window starts at {n - block_size - 1} and ends at the last token; randint excludes its "
        f"upper bound, so use len(data) - block_size"
    )
    assert counts[0] > 0, "the first window (start 0) is never drawn: the starts should begin at 0"
    assert ((counts[:5] > 130) & (counts[:5] < 270)).all(), (
        f"the starts 0 .. 4 should be drawn about equally often (about 200 times each in 1000)\n"
        f"got {counts[:5].tolist()}: draw them uniformly with torch.randint"
    )


def test_a_text_of_exactly_one_window_gives_that_window_every_time(step):
    block_size = 64
    data = text(block_size + 1)
    try:
        x, y = batch(step, data, block_size, 5)
    except NotImplementedError:
        raise
    except Exception as e:
        raise AssertionError(
            f"get_batch failed on exactly block_size + 1 = {block_size + 1} tokens: is the upper bound of randint "
            f"off by one?\n{type(e).__name__}: {e}\nthat text holds one window, start 0"
        ) from e
    assert x.tolist() == [data[:-1].tolist()] * 5 and y.tolist() == [data[1:].tolist()] * 5, (
        "with block_size + 1 tokens every row should be the one window: x = data[:-1], y = data[1:]"
    )


def test_seeded_generators_give_the_same_batches(step):
    data = text(5000)
    x1, y1 = batch(step, data, 16, 8, seed=123)
    torch.manual_seed(999)  # the global random state must not matter when a generator is given
    x2, y2 = batch(step, data, 16, 8, seed=123)
    assert torch.equal(x1, x2) and torch.equal(y1, y2), (
        "two generators seeded alike gave different batches: is the generator passed on to torch.randint?\n"
        "draw the starts with torch.randint(..., generator=generator), not with numpy or the global state"
    )
    x3, _ = batch(step, data, 16, 8, seed=124)
    assert not torch.equal(x1, x3), "two different seeds gave the same batch: are the starts drawn at random?"
    torch.manual_seed(7)
    x4, _ = step.get_batch(data, 16, 8)
    torch.manual_seed(7)
    x5, _ = step.get_batch(data, 16, 8)
    assert torch.equal(x4, x5), (
        "without a generator, torch.manual_seed should make get_batch repeat\n"
        "pass generator=None on to torch.randint, which then uses torch's global random state"
    )


@pytest.mark.parametrize("n, block_size", [(40, 64), (64, 64), (0, 4), (4, 4)])
def test_a_too_short_text_is_refused_with_a_clear_message(step, n, block_size):
    with pytest.raises(ValueError) as info:
        batch(step, text(n), block_size, 4)
    message = str(info.value)
    assert str(n) in message and str(block_size + 1) in message, (
        f"say how many tokens the text has ({n}) and how many one window of block_size={block_size} needs "
        f"({block_size + 1})\nthe ValueError says: {message}"
    )


def test_ten_million_tokens_are_served_without_copying_the_text(step, big_text):
    batch_size, block_size = 8, 64
    batch(step, big_text, block_size, batch_size)  # warm up: first calls may set up caches
    tracemalloc.start()
    try:
        x, y = batch(step, big_text, block_size, batch_size, seed=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, (
        f"one get_batch(B=8, T=64) allocated {peak / 1e6:.1f} MB on a 20 MB text: is the whole text copied?\n"
        f"copy only the 8 drawn windows (about 8 KB): no data.astype(...) or torch.tensor(data) on all of it, "
        f"and no list of every window"
    )
    assert tuple(x.shape) == (batch_size, block_size) and x.dtype == torch.long, (
        f"expected x of shape (8, 64) and dtype torch.long, got {tuple(x.shape)} {x.dtype}"
    )
    assert ((x[:, 1:] - x[:, :-1]) % 65536 == 1).all() and ((y - x) % 65536 == 1).all(), (
        "on the large text, rows of x are not consecutive tokens or y is not x shifted by one"
    )


def reads_all(name: str):
    """An ndarray method that counts every token of the array as read, then does its usual work."""
    def method(self, *args, **kwargs):
        CountingText.read += self.size
        return getattr(np.ndarray, name)(self.view(np.ndarray), *args, **kwargs)
    return method


class CountingText(np.ndarray):
    """A token array that counts the tokens read from it: through indexing, and by whole-array conversions."""

    read = 0  # tokens handed out since the last reset

    def __getitem__(self, key):
        part = np.asarray(super().__getitem__(key))  # a plain array: what is done with a window is not counted
        CountingText.read += part.size
        return part

    astype, copy, tolist, tobytes = reads_all("astype"), reads_all("copy"), reads_all("tolist"), reads_all("tobytes")
    __iter__ = reads_all("__iter__")


def torch_bytes_allocated(fn) -> int:
    """Bytes that torch allocates while fn() runs, as its profiler records them (numpy's are tracemalloc's)."""
    with torch.autograd.profiler.profile(profile_memory=True, use_kineto=False) as prof:
        fn()
    return sum(e.cpu_memory_usage for e in prof.function_events if e.cpu_memory_usage > 0)


def test_get_batch_reads_only_the_drawn_windows(step, big_text):
    """B=8 windows of T=64 read 8 x 65 = 520 tokens, x and y together (at most 2 x 8 x 64 = 1024 if read
    separately), out of ten million: counted, not timed, so a busy machine cannot change the verdict."""
    batch_size, block_size = 8, 64
    data = big_text.view(CountingText)
    CountingText.read = 0
    x, y = batch(step, data, block_size, batch_size, seed=5)
    read = CountingText.read
    assert read <= 2 * batch_size * (block_size + 1), (
        f"one get_batch(B=8, T=64) read {read:,} tokens of a text of {BIG:,}: is the whole text converted or "
        f"copied on every call?\nonly the drawn windows should be touched: index first (data[idx]), convert after"
    )
    allocated = torch_bytes_allocated(lambda: batch(step, big_text, block_size, batch_size, seed=5))
    assert allocated < 1_000_000, (
        f"one get_batch(B=8, T=64) made torch allocate {allocated / 1e6:.1f} MB on a 20 MB text: is the whole "
        f"text turned into a tensor (torch.from_numpy(data).long(), torch.tensor(data))?\n"
        f"only the drawn windows should be converted"
    )
    assert tuple(x.shape) == (batch_size, block_size) and ((y - x) % 65536 == 1).all(), (
        "on the counting text, x should have shape (8, 64) and y be x shifted by one"
    )
