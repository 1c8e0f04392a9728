"""Checks for step 2: the data pipeline.

Most checks use token arrays whose values tell their positions: data[i] = i + OFFSET. A window's first value
then names its start, an off-by-one shows up as a wrong number, and a batch of positions (instead of the
tokens at those positions) cannot pass for tokens.

A message names a mistake only when the check has confirmed it: it computes what that very mistake gives on
the same input (the split a rounding gives, the starts another call of torch's generator draws) and names it
when the learner's result equals that. Otherwise it says plainly what differs.
"""

import math
import tracemalloc

import numpy as np
import pytest
import torch

OFFSET = 1000
BIG = 10_000_000  # tokens in the large-text checks: 20 MB as uint16

# The causes a message may name, each only once the check has seen that very mistake's result.
ALWAYS_U16 = "uint16 for every vocabulary: above 65536 tokens the ids need int32"
BOUNDARY_U16 = "vocab_size=65536 still fits uint16 (ids 0 .. 65535): int32 only when vocab_size > 2**16"
INT64 = "int64 instead of int32 for a large vocabulary: int32 holds any id at half the memory"
BY_IDS = "the dtype follows the largest id present, not vocab_size: a vocabulary over 65536 gets int32 always"
NO_CHECK = "no id is checked against the vocabulary: raise ValueError for an id below 0 or at least vocab_size"
NEGATIVE_ID = "a negative id is accepted: ids must be 0 or more"
EQUAL_ID = "an id equal to vocab_size is accepted: the largest id is vocab_size - 1"

COPIED = "train or val is a copy of the tokens, not a view: slice data (data[:n_train], data[n_train:])"
SHUFFLED = "the tokens are shuffled: train is the first part of the text and val the rest, in order"
WRONG_PART = "val_fraction is applied to the training part: n_train = int(len(data) * (1 - val_fraction))"
ROUNDED = "n_train is rounded instead of cut down: n_train = int(len(data) * (1 - val_fraction))"
VAL_CUT = "the validation part is cut down instead of the training part: n_train = int(len(data) * (1 - val_fraction))"
ZERO_OK = "val_fraction=0 is accepted: it would leave nothing to validate on"

PLUS_ONE = "one window too many: a window needs block_size + 1 tokens, so there are n_tokens - block_size"
MINUS_ONE = "one window too few: the last window ends exactly at the last token, n_tokens - block_size windows"
NEGATIVE_COUNT = "a text shorter than one window holds 0 windows, never fewer: max(0, ...)"

NEGATIVE_I = "a negative i is accepted (Python's negative indexing): raise IndexError unless 0 <= i"
LAST_PLUS_ONE = "i = num_windows is accepted: the last window is num_windows - 1"
NUMPY_WINDOW = "get_window returns numpy arrays, not torch tensors: torch.from_numpy(part.astype(np.int64))"
Y_IS_X = "y equals x: the targets are the same window one token later, data[idx + 1]"
Y_BY_TWO = "y is shifted by two: it starts one token after x, data[i + 1 : i + 1 + block_size]"
KEPT_DTYPE = "keeps the text's dtype: convert the gathered windows with .astype(np.int64)"
SWAPPED_AXES = "rows and columns are swapped: idx = starts[:, None] + np.arange(block_size) is (B, T)"

SHORT_BOUND = "the last window is never drawn: randint's upper bound is excluded, so use len(data) - block_size"
PAST_LAST = "randint draws starts past the last window: its upper bound is excluded, so use len(data) - block_size"
NOT_REPLACED = "the starts are drawn without replacement (randperm): draw each with torch.randint"
NOT_PASSED = "the generator is not passed on to torch.randint: torch.randint(..., generator=generator)"
NOT_TORCH = "torch.manual_seed does not repeat the batches: draw the starts with torch.randint, not numpy or random"
OWN_SEED = "the same batch whatever torch.manual_seed: with generator=None, torch.randint uses torch's global state"
NUMPY_STATE = "get_batch changed numpy's global random state: draw the starts with torch.randint"
LET_THROUGH = "a text of exactly block_size tokens is let through: one window needs block_size + 1 tokens"
WHOLE_READ = "every token of the text is read on every call: index first (data[idx]), convert after"
WHOLE_TENSOR = "the whole text is made a tensor on every call: index the numpy array first, convert after"


def lead(cause: str) -> str:
    return f"{cause}; " if cause else ""


def one_cause(found: dict) -> str:
    """The only cause whose result matched ("" when none did, or more than one)."""
    hits = [cause for cause, matched in found.items() if matched]
    return hits[0] if len(hits) == 1 else ""


def text(n: int, dtype=np.uint16) -> np.ndarray:
    """n tokens with data[i] = i + OFFSET, so a value gives its position back."""
    return (np.arange(n) + OFFSET).astype(dtype)


def windows_count(n: int, block_size: int) -> int:
    """Counted one start at a time: start i needs tokens i .. i + block_size, all inside the text."""
    return sum(1 for i in range(n) if i + block_size <= n - 1)


def batch(step, data, block_size, batch_size, seed=0):
    return step.get_batch(data, block_size, batch_size, generator=torch.Generator().manual_seed(seed))


def drawn(high: int, batch_size: int, seed: int, how: str = "randint") -> list[int]:
    """The starts that torch draws from Generator().manual_seed(seed): the docstring's way or another."""
    g = torch.Generator().manual_seed(seed)
    if how == "randperm":
        return torch.randperm(high, generator=g)[:batch_size].tolist() if high > 0 else []
    return torch.randint(high, (batch_size,), generator=g).tolist() if high > 0 else []


def starts_cause(starts: list[int], n: int, block_size: int, seed: int, global_starts=None) -> str:
    """Which known way of drawing gives exactly these starts from Generator().manual_seed(seed)."""
    B, high = len(starts), n - block_size
    if B * math.log(max(high, 1)) < math.log(1e4):  # so few starts that any draw could match by chance
        return ""
    return one_cause({SHORT_BOUND: starts == drawn(high - 1, B, seed),
                      NOT_REPLACED: B <= high and starts == drawn(high, B, seed, "randperm"),
                      NOT_PASSED: global_starts is not None and starts == global_starts})


@pytest.fixture(scope="module")
def big_text():
    """Ten million uint16 tokens, data[i] = i mod 65536, so consecutive tokens differ by 1 (mod 65536)."""
    return np.resize(np.arange(65536, dtype=np.uint16), BIG)  # 0, 1, ..., 65535, 0, 1, ...


# as_token_array -------------------------------------------------------------------------------------------

def test_as_token_array_picks_uint16_up_to_65536_tokens_and_int32_beyond(step):
    """2**16 - 1 and 2**16 tokens: ids up to 65535, uint16. 2**16 + 1 tokens: id 65536 needs int32."""
    sizes = [256, 50257, 2**16 - 1, 2**16, 2**16 + 1, 100277]
    got = {v: step.as_token_array([0, 1, v - 1], v) for v in sizes}
    small = {v: step.as_token_array([0, 1, 2], v) for v in sizes}  # small ids, so only vocab_size can choose
    for v in sizes:
        want = np.uint16 if v <= 2**16 else np.int32
        for ids, arr in ((f"[0, 1, {v - 1}]", got[v]), ("[0, 1, 2]", small[v])):
            assert isinstance(arr, np.ndarray), f"as_token_array should return a numpy array, got {type(arr).__name__}"
            if arr.dtype != want:
                dtypes = {v: (got[v].dtype, small[v].dtype) for v in sizes}
                cause = one_cause({
                    ALWAYS_U16: all(d == (np.uint16, np.uint16) for d in dtypes.values()),
                    BOUNDARY_U16: all(d == ((np.uint16,) * 2 if u < 2**16 else (np.int32,) * 2)
                                      for u, d in dtypes.items()),
                    INT64: all(d == ((np.uint16,) * 2 if u <= 2**16 else (np.int64,) * 2) for u, d in dtypes.items()),
                    BY_IDS: all(d == (np.uint16 if u <= 2**16 else np.int32, np.uint16) for u, d in dtypes.items()),
                })
                raise AssertionError(f"{lead(cause)}as_token_array({ids}, vocab_size={v}) should give "
                                     f"{np.dtype(want).name}, got {arr.dtype}: uint16 holds ids 0 .. 65535, so it "
                                     f"fits vocab_size <= 2**16 = 65536")


@pytest.mark.parametrize("ids, vocab_size", [
    ([5, 0, 511], 512),
    (list(range(512)), 512),
    ((7, 7, 3), 512),
    (np.array([0, 65535, 1234], dtype=np.int64), 65536),
    (np.arange(10, dtype=np.int64)[::3], 512),  # a strided view
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
        f"the ids changed on the way into the array: expected {want[:8]}..., got {arr.tolist()[:8]}...; "
        f"convert with .astype(dtype), do not sort, clip or rescale"
    )


REFUSED = [([3, 512], 512, 512), ([-1, 4], 512, -1), ([3, 70000], 65536, 70000), ([1, 2, 100000], 100000, 100000),
           ([65536], 65536, 65536)]


def accepted_ids(step) -> list[int]:
    """The bad ids of REFUSED that as_token_array lets through."""
    out = []
    for ids, vocab_size, bad in REFUSED:
        try:
            step.as_token_array(ids, vocab_size)
        except ValueError:
            continue
        out.append(bad)
    return out


@pytest.mark.parametrize("ids, vocab_size, bad", REFUSED)
def test_as_token_array_refuses_ids_outside_the_vocabulary(step, ids, vocab_size, bad):
    try:
        arr = step.as_token_array(ids, vocab_size)
    except ValueError as e:
        assert str(bad) in str(e), f"the ValueError should name the bad id {bad}; it says: {e}"
    else:
        through = accepted_ids(step)
        cause = one_cause({NO_CHECK: len(through) == len(REFUSED), NEGATIVE_ID: through == [-1],
                           EQUAL_ID: sorted(through) == [512, 65536, 100000]})
        raise AssertionError(
            f"{lead(cause)}as_token_array accepted id {bad} with vocab_size={vocab_size} and stored "
            f"{arr.tolist()}: raise ValueError for ids outside 0 .. vocab_size - 1 (uint16 would wrap 70000 to 4464)"
        )


# train_val_split ------------------------------------------------------------------------------------------

SPLITS = [(10, 0.1), (10, 0.5), (10, 0.25), (10, 0.35), (11, 0.5), (1001, 0.1), (97, 0.25)]


def n_train_cause(step) -> str:
    """Which rounding gives the learner's n_train on every case of SPLITS."""
    got = [len(step.train_val_split(text(n), f)[0]) for n, f in SPLITS]
    return one_cause({WRONG_PART: got == [int(n * f) for n, f in SPLITS],
                      ROUNDED: got == [round(n * (1 - f)) for n, f in SPLITS],
                      VAL_CUT: got == [n - int(n * f) for n, f in SPLITS]})


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
            f"{lead(n_train_cause(step))}train_val_split(data=[0 .. 9]{', ' if args else ''}"
            f"{', '.join(map(str, args))}) should give train {want_train} and val {want_val}, got "
            f"{train.tolist()} and {val.tolist()}"
        )


@pytest.mark.parametrize("n, val_fraction", SPLITS + [(1000, 0.1), (10, 0.3), (5000, 0.05), (1, 0.5), (0, 0.1)])
def test_train_val_split_rounds_the_training_part_down(step, n, val_fraction):
    """n_train = int(n * (1 - val_fraction)): 10 tokens at 0.25 -> int(7.5) = 7 train, 3 val;
    11 at 0.5 -> int(5.5) = 5; 10 at 0.35 -> int(6.5) = 6."""
    data = text(n)
    train, val = step.train_val_split(data, val_fraction)
    want = int(n * (1 - val_fraction))
    if len(train) + len(val) == n and sorted(np.concatenate([train, val]).tolist()) == data.tolist() \
            and not np.array_equal(np.concatenate([train, val]), data):
        raise AssertionError(f"{SHUFFLED}; train starts with the tokens at positions "
                             f"{(train[:4].astype(np.int64) - OFFSET).tolist()}")
    assert len(train) == want and np.array_equal(np.concatenate([train, val]), data), (
        f"{lead(n_train_cause(step))}{n} tokens with val_fraction={val_fraction} should give train = the first "
        f"int({n} * {1 - val_fraction:g}) = {want} tokens and val the other {n - want}, in order; got "
        f"{len(train)} and {len(val)}"
    )


def test_train_val_split_returns_views_not_copies(step):
    data = text(1000)
    train, val = step.train_val_split(data, 0.1)
    for name, part, want in [("train", train, data[:900]), ("val", val, data[900:])]:
        assert isinstance(part, np.ndarray), f"{name} should be a numpy array, got {type(part).__name__}"
        if not np.shares_memory(part, data):
            raise AssertionError(
                f"{lead(COPIED if np.array_equal(part, want) else '')}{name} shares no memory with data: "
                f"np.array(...), .copy() or a shuffle copy the whole text")
        assert part.dtype == data.dtype, f"{name} changed dtype from {data.dtype} to {part.dtype}: keep the slices"


@pytest.mark.parametrize("val_fraction", [0, 1, 0.0, 1.0, -0.1, 1.5])
def test_train_val_split_refuses_fractions_outside_zero_to_one(step, val_fraction):
    try:
        step.train_val_split(text(100), val_fraction)
    except ValueError as error:
        assert str(val_fraction) in str(error), (
            f"the ValueError should name the bad val_fraction {val_fraction}; it says: {error}")
        return
    refused = []
    for f in (1, -0.1, 1.5):
        try:
            step.train_val_split(text(100), f)
        except ValueError:
            refused.append(f)
    cause = ZERO_OK if val_fraction == 0 and refused == [1, -0.1, 1.5] else ""
    raise AssertionError(f"{lead(cause)}train_val_split(val_fraction={val_fraction}) should raise ValueError: "
                         f"only 0 < val_fraction < 1 leaves tokens to train on and tokens to validate on")


# num_windows ----------------------------------------------------------------------------------------------

NUM_CASES = [(n, b) for b in (1, 2, 4, 64) for n in (0, 1, 2, 3, 4, 5, 6, 10, 64, 65, 1000)]


def num_windows_cause(step) -> str:
    got = [step.num_windows(n, b) for n, b in NUM_CASES]
    return one_cause({PLUS_ONE: got == [max(0, n - b + 1) for n, b in NUM_CASES],
                      MINUS_ONE: got == [max(0, n - b - 1) for n, b in NUM_CASES]})


def test_num_windows_hand_example(step):
    """n_tokens=10, block_size=4: starts 0, 1, 2, 3, 4, 5 -> 6 windows (start 5 reads tokens 5 .. 9).
    n_tokens=5 -> 1 window (tokens 0 .. 4); n_tokens=4 -> 0 (the last target, token 4, is missing).
    """
    for n, want in [(10, 6), (5, 1), (4, 0)]:
        got = step.num_windows(n, 4)
        if got == want - 1 or got == want + 1 or got < 0:
            cause = NEGATIVE_COUNT if got < 0 else num_windows_cause(step)
        else:
            cause = ""
        assert got == want, f"{lead(cause)}num_windows({n}, block_size=4) should be {want}, got {got}"


@pytest.mark.parametrize("block_size", [1, 2, 4, 64])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 10, 64, 65, 1000])
def test_num_windows_matches_counting_the_windows_one_by_one(step, n, block_size):
    got = step.num_windows(n, block_size)
    want = windows_count(n, block_size)
    assert isinstance(got, (int, np.integer)), f"num_windows should return an int, got {type(got).__name__}"
    assert got >= 0, f"{NEGATIVE_COUNT}; num_windows({n}, {block_size}) is {got}"
    assert got == want, (
        f"{lead(num_windows_cause(step))}num_windows({n}, {block_size}) should be {want} (the starts s with "
        f"s + block_size still a token of the text), got {got}"
    )


# get_window -----------------------------------------------------------------------------------------------

def window_cause(data, i, block_size, x, y) -> str:
    x, y = list(x), list(y)
    return one_cause({Y_IS_X: y == x and len(x) > 0,
                      Y_BY_TWO: y == data[i + 2:i + 2 + block_size].tolist() and len(y) == block_size})


def window(step, data, i, block_size):
    x, y = step.get_window(data, i, block_size)
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        raise AssertionError(f"{NUMPY_WINDOW}; get_window returned {type(x).__name__} and {type(y).__name__}")
    return x, y


def test_get_window_hand_example(step):
    """data = [10, 11, ..., 19], block_size = 4:
    i=0 -> x = data[0:4] = [10, 11, 12, 13], y = data[1:5]  = [11, 12, 13, 14]
    i=5 -> x = data[5:9] = [15, 16, 17, 18], y = data[6:10] = [16, 17, 18, 19]   (ends at the last token)
    """
    data = np.arange(10, 20, dtype=np.uint16)
    for i, want_x, want_y in [(0, [10, 11, 12, 13], [11, 12, 13, 14]), (5, [15, 16, 17, 18], [16, 17, 18, 19])]:
        try:
            x, y = window(step, data, i, 4)
        except IndexError as error:
            raise AssertionError(f"get_window(data, {i}, 4) raised IndexError({error}), but 10 tokens hold "
                                 f"windows 0 .. 5") from error
        assert x.tolist() == want_x, f"window {i}: x should be data[{i}:{i + 4}] = {want_x}, got {x.tolist()}"
        assert y.tolist() == want_y, (
            f"{lead(window_cause(data, i, 4, x.tolist(), y.tolist()))}window {i}: y should be "
            f"data[{i + 1}:{i + 5}] = {want_y}, got {y.tolist()}"
        )


@pytest.mark.parametrize("block_size", [1, 3, 11])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "a strided view"])
def test_y_is_x_shifted_by_one_in_every_window(step, block_size, strided):
    n = 12
    data = (np.arange(2 * n) + OFFSET).astype(np.uint16)[::2] if strided else text(n)
    for i in range(windows_count(n, block_size)):
        x, y = window(step, data, i, block_size)
        assert x.tolist() == data[i:i + block_size].tolist(), (
            f"window {i}: x should be data[{i} : {i} + block_size] = {data[i:i + block_size].tolist()}, "
            f"got {x.tolist()}"
        )
        assert y.tolist() == data[i + 1:i + 1 + block_size].tolist(), (
            f"{lead(window_cause(data, i, block_size, x.tolist(), y.tolist()))}window {i}: y should be "
            f"data[{i + 1} : {i + 1 + block_size}] = {data[i + 1:i + 1 + block_size].tolist()}, got {y.tolist()}"
        )


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_get_window_returns_long_tensors_of_length_block_size(step, dtype):
    x, y = window(step, text(20, dtype), 3, 7)
    for name, t in [("x", x), ("y", y)]:
        assert isinstance(t, torch.Tensor), f"{name} should be a torch.Tensor, got {type(t).__name__}"
        assert tuple(t.shape) == (7,), f"{name} should have shape (block_size,) = (7,), got {tuple(t.shape)}"
        assert t.dtype == torch.long, (
            f"{lead(KEPT_DTYPE if str(t.dtype) == 'torch.' + np.dtype(dtype).name else '')}{name} is {t.dtype}, "
            f"expected torch.long (int64): embedding layers need long ids"
        )


def safely(fn):
    """fn()'s result, or None where it raises (a second opinion must not hide the first failure)."""
    try:
        return fn()
    except Exception:
        return None


def refuses(step, n, block_size, i) -> bool:
    try:
        step.get_window(text(n), i, block_size)
    except IndexError:
        return True
    return False


@pytest.mark.parametrize("n, block_size, i", [(10, 4, 6), (10, 4, -1), (10, 4, 100), (4, 4, 0), (10, 4, -6)])
def test_get_window_refuses_starts_that_do_not_exist(step, n, block_size, i):
    last = n - block_size - 1
    try:
        got = step.get_window(text(n), i, block_size)
    except IndexError as e:
        assert str(i) in str(e), f"the IndexError should name the bad start i={i}; it says: {e}"
        if last >= 0:
            assert str(last) in str(e), f"the IndexError should give the valid range 0 .. {last}; it says: {e}"
    else:
        counted = safely(lambda: step.num_windows(n, block_size))
        # get_window may bound i with num_windows: then a window too many is num_windows' mistake, not its own
        cause = NEGATIVE_I if i < 0 else (LAST_PLUS_ONE if i == last + 1 >= 1 and counted == last + 1
                                          and refuses(step, n, block_size, i + 1) else "")
        raise AssertionError(
            f"{lead(cause)}get_window(i={i}) with {n} tokens and block_size={block_size} should raise IndexError: "
            f"only starts 0 .. {last} exist; it returned x = {got[0].tolist()}"
        )


# get_batch ------------------------------------------------------------------------------------------------

def test_batch_has_shape_batch_by_block_and_dtype_long(step):
    for batch_size, block_size, n, dtype in [(4, 7, 50, np.uint16), (1, 1, 2, np.uint16), (3, 1, 10, np.int32),
                                              (2, 9, 10, np.uint16), (5, 64, 1000, np.uint16), (1, 16, 100, np.uint16)]:
        x, y = batch(step, text(n, dtype), block_size, batch_size)
        for name, t in [("x", x), ("y", y)]:
            assert isinstance(t, torch.Tensor), f"{name} should be a torch.Tensor, got {type(t).__name__}"
            swapped = tuple(t.shape) == (block_size, batch_size) and batch_size != block_size
            assert tuple(t.shape) == (batch_size, block_size), (
                f"{lead(SWAPPED_AXES if swapped else '')}with B={batch_size} and T={block_size}, {name} has shape "
                f"{tuple(t.shape)}, expected (B, T) = {(batch_size, block_size)}"
            )
            assert t.dtype == torch.long, (
                f"{lead(KEPT_DTYPE if str(t.dtype) == 'torch.' + np.dtype(dtype).name else '')}{name} is {t.dtype}, "
                f"expected torch.long (int64): embedding layers need long ids"
            )


@pytest.mark.parametrize("dtype, strided", [(np.uint16, False), (np.int32, False), (np.uint16, True)],
                         ids=["uint16", "int32", "a strided view"])
def test_every_row_of_a_batch_is_a_window_and_its_shifted_targets(step, dtype, strided):
    n, block_size, batch_size = 300, 10, 16
    data = text(2 * n, dtype)[::2] if strided else text(n, dtype)
    x, y = batch(step, data, block_size, batch_size, seed=3)
    step_by = 2 if strided else 1
    for b in range(batch_size):
        start = (int(x[b, 0]) - OFFSET) // step_by
        assert 0 <= start <= n - block_size - 1 and x[b].tolist() == data[start:start + block_size].tolist(), (
            f"row {b} of x is {x[b].tolist()}, which is not data[s : s + block_size] for any start s"
        )
        assert y[b].tolist() == data[start + 1:start + 1 + block_size].tolist(), (
            f"{lead(window_cause(data, start, block_size, x[b].tolist(), y[b].tolist()))}row {b}: y should be "
            f"data[{start + 1} : {start + 1 + block_size}] = {data[start + 1:start + 1 + block_size].tolist()}, "
            f"got {y[b].tolist()}"
        )


def past_last_cause(n, block_size, batch_size, seed, error) -> str:
    """An IndexError from drawing with one too many starts: confirmed when that draw reaches past the last."""
    past = drawn(n - block_size + 1, batch_size, seed)
    return PAST_LAST if isinstance(error, IndexError) and max(past) == n - block_size else ""


def test_batch_starts_cover_every_window_including_the_last(step):
    """8 tokens, block_size 3: starts 0 .. 4 (5 windows; start 4 reads tokens 4 .. 7, the last one).
    Drawn 1000 times, each start should come up about 200 times, and no other start ever.
    """
    n, block_size, draws = 8, 3, 1000
    try:
        x, _ = batch(step, text(n), block_size, draws, seed=1)
    except NotImplementedError:
        raise
    except Exception as e:  # an out-of-range start fails deep inside numpy or torch
        raise AssertionError(
            f"{lead(past_last_cause(n, block_size, draws, 1, e))}get_batch(8 tokens, block_size=3, "
            f"batch_size=1000) raised {type(e).__name__}: {e}"
        ) from e
    assert tuple(x.shape) == (draws, block_size), f"x should have shape (1000, 3), got {tuple(x.shape)}"
    starts = x[:, 0] - OFFSET
    counts = torch.bincount(starts.clamp(min=0), minlength=n)
    cause = starts_cause(starts.tolist(), n, block_size, 1)
    assert starts.min() >= 0 and starts.max() <= n - block_size - 1, (
        f"{lead(cause)}a start of {int(starts.max())} was drawn, but the last window starts at {n - block_size - 1}"
    )
    assert counts[n - block_size - 1] > 0, (
        f"{lead(cause)}start {n - block_size - 1}, the window that ends at the last token, never came up in "
        f"1000 draws"
    )
    assert counts[0] > 0, "the first window (start 0) is never drawn: the starts should begin at 0"
    assert ((counts[:5] > 130) & (counts[:5] < 270)).all(), (
        f"{lead(cause)}the starts 0 .. 4 should come up about 200 times each in 1000 draws, got {counts[:5].tolist()}"
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
            f"{lead(past_last_cause(block_size + 1, block_size, 5, 0, e))}get_batch on a text of exactly "
            f"{block_size + 1} tokens with block_size={block_size} raised {type(e).__name__}: {e}"
        ) from e
    if tuple(x.shape) != (5, block_size):
        cause = NOT_REPLACED if tuple(x.shape) == (1, block_size) else ""
        raise AssertionError(f"{lead(cause)}batch_size=5 on a text of one window should give x of shape (5, 64), "
                             f"got {tuple(x.shape)}")
    assert x.tolist() == [data[:-1].tolist()] * 5 and y.tolist() == [data[1:].tolist()] * 5, (
        "with block_size + 1 tokens every row should be the one window: x = data[:-1], y = data[1:]"
    )


@pytest.mark.parametrize("n, block_size, batch_size, seed", [(5000, 16, 8, 123), (20, 4, 1, 5), (6, 5, 3, 2)])
def test_the_starts_are_torch_randint_from_the_generator(step, n, block_size, batch_size, seed):
    """The docstring's draw, repeated here: torch.randint(len(data) - block_size, (batch_size,), generator=g)."""
    want = drawn(n - block_size, batch_size, seed)
    torch.manual_seed(seed + 1)
    global_starts = torch.randint(n - block_size, (batch_size,)).tolist()
    torch.manual_seed(seed + 1)  # the global random state must not matter when a generator is given
    try:
        x, _ = batch(step, text(n), block_size, batch_size, seed)
    except NotImplementedError:
        raise
    except Exception as e:
        raise AssertionError(f"{lead(past_last_cause(n, block_size, batch_size, seed, e))}get_batch({n} tokens, "
                             f"block_size={block_size}, batch_size={batch_size}) raised {type(e).__name__}: {e}") from e
    got = (x[:, 0] - OFFSET).tolist()
    assert got == want, (
        f"{lead(starts_cause(got, n, block_size, seed, global_starts))}with Generator().manual_seed({seed}) the "
        f"starts should be torch.randint({n - block_size}, ({batch_size},), generator=generator) = {want[:8]}, "
        f"got {got[:8]}"
    )


def test_without_a_generator_the_batches_follow_torch_manual_seed(step):
    data = text(5000)
    torch.manual_seed(7)
    want = torch.randint(5000 - 16, (8,)).tolist()
    torch.manual_seed(7)
    x1, _ = step.get_batch(data, 16, 8)
    torch.manual_seed(7)
    x2, _ = step.get_batch(data, 16, 8)
    torch.manual_seed(8)
    x3, _ = step.get_batch(data, 16, 8)
    if not torch.equal(x1, x2):
        raise AssertionError(f"{NOT_TORCH}; two calls after torch.manual_seed(7) drew the starts "
                             f"{(x1[:, 0] - OFFSET).tolist()} and {(x2[:, 0] - OFFSET).tolist()}")
    if torch.equal(x1, x3):
        raise AssertionError(f"{OWN_SEED}; torch.manual_seed(7) and torch.manual_seed(8) both gave the starts "
                             f"{(x1[:, 0] - OFFSET).tolist()}")
    got = (x1[:, 0] - OFFSET).tolist()
    assert got == want, (
        f"after torch.manual_seed(7) the starts should be torch.randint(4984, (8,)) = {want}, got {got}"
    )


def test_a_call_leaves_the_global_random_state_and_its_input_alone(step):
    """With a generator, get_batch draws from it alone: torch's and numpy's global streams stay where they were."""
    data = text(500)
    before = data.copy()
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    batch(step, data, 8, 4, seed=1)
    now = np.random.get_state()  # the key moves only every 624 draws; the position in it moves on every draw
    assert np.array_equal(now[1], numpy_state[1]) and now[2:] == numpy_state[2:], (
        f"{NUMPY_STATE}; a call with a generator moved numpy's global stream")
    assert torch.equal(torch.get_rng_state(), torch_state), (
        "a call with a generator moved torch's global random stream: draw only from the generator given")
    assert np.array_equal(data, before), "get_batch changed the tokens of the text it was given"


@pytest.mark.parametrize("n, block_size", [(40, 64), (64, 64), (0, 4), (4, 4), (3, 4)])
def test_a_too_short_text_is_refused_with_a_clear_message(step, n, block_size):
    try:
        batch(step, text(n), block_size, 4)
    except ValueError as error:
        message = str(error)
    except NotImplementedError:
        raise
    except Exception as error:
        cause = ""
        if n == block_size:
            try:
                batch(step, text(block_size - 1), block_size, 4)
            except ValueError:
                cause = LET_THROUGH
            except Exception:
                pass
        raise AssertionError(f"{lead(cause)}get_batch on {n} tokens with block_size={block_size} raised "
                             f"{type(error).__name__} ({error}), expected a ValueError") from error
    else:
        raise AssertionError(f"get_batch on {n} tokens with block_size={block_size} should raise ValueError: "
                             f"one window needs {block_size + 1} tokens")
    assert str(n) in message and str(block_size + 1) in message, (
        f"say how many tokens the text has ({n}) and how many one window of block_size={block_size} needs "
        f"({block_size + 1}); the ValueError says: {message}"
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
        f"one get_batch(B=8, T=64) allocated {peak / 1e6:.1f} MB on a 20 MB text, where the 8 drawn windows "
        f"take about 8 KB"
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


def torch_bytes_allocated(fn) -> tuple[int, str]:
    """Bytes that torch allocates while fn() runs, as its profiler records them, and the operation that
    allocated most ("aten::randperm"...)."""
    with torch.autograd.profiler.profile(profile_memory=True, use_kineto=False) as prof:
        fn()
    events = [e for e in prof.function_events if e.cpu_memory_usage > 0]
    biggest = max(events, key=lambda e: e.cpu_memory_usage, default=None)
    return sum(e.cpu_memory_usage for e in events), biggest.name if biggest else ""


def test_get_batch_reads_only_the_drawn_windows(step, big_text):
    """B=8 windows of T=64 read 8 x 65 = 520 tokens, x and y together (at most 2 x 8 x 64 = 1024 if read
    separately), out of ten million: counted, not timed, so a busy machine cannot change the verdict."""
    batch_size, block_size = 8, 64
    data = big_text.view(CountingText)
    CountingText.read = 0
    x, y = batch(step, data, block_size, batch_size, seed=5)
    read = CountingText.read
    assert read <= 2 * batch_size * (block_size + 1), (
        f"{lead(WHOLE_READ if read >= BIG else '')}one get_batch(B=8, T=64) read {read:,} tokens of a text of "
        f"{BIG:,}, where the drawn windows hold at most {2 * batch_size * block_size}"
    )
    allocated, by = torch_bytes_allocated(lambda: batch(step, big_text, block_size, batch_size, seed=5))
    # A whole-text tensor is a copy or a conversion; a permutation of every start is the other way to fill memory.
    whole = allocated >= BIG * 2 and "rand" not in by
    assert allocated < 1_000_000, (
        f"{lead(WHOLE_TENSOR if whole else '')}one get_batch(B=8, T=64) made torch allocate "
        f"{allocated / 1e6:.1f} MB on a 20 MB text (most of it in {by}), where the drawn windows take about 8 KB"
    )
    assert tuple(x.shape) == (batch_size, block_size) and ((y - x) % 65536 == 1).all(), (
        "on the counting text, x should have shape (8, 64) and y be x shifted by one"
    )
