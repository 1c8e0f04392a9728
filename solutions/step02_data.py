"""Step 2: the data pipeline, from one long list of token ids to batches of next-token examples.

Step 1 turned text into token ids. A GPT learns one thing: given the tokens so far, predict the next one.
So every stretch of block_size + 1 consecutive tokens is a training example: its first block_size tokens are
the input x, and the same tokens shifted one place to the left are the targets y. Position t of x is asked
to predict y[t] = x[t + 1], so one window teaches block_size predictions at once.

This step stores the ids compactly, holds back the end of the text for validation, and draws random
windows in batches, copying only the windows it draws: the text itself may have millions of tokens.
"""

import numpy as np
import torch


def as_token_array(ids, vocab_size: int) -> np.ndarray:
    """The token ids as a compact 1-D numpy array: uint16 when every id fits in 16 bits, else int32.

    An id is at most vocab_size - 1, so uint16 (0 .. 65535) holds any vocabulary of up to 65536 tokens,
    GPT-2's 50257 included, at 2 bytes a token: 10 million tokens take 20 MB, not the 80 MB of int64
    (a Python list of them needs 80 MB for its pointers alone).
        ids=[5, 0, 511], vocab_size=512   -> array([5, 0, 511], dtype=uint16)
        ids=[70000], vocab_size=100000    -> array([70000], dtype=int32)
        ids=[512], vocab_size=512         -> ValueError (not a token of this vocabulary)

    Raises ValueError for an id below 0 or at least vocab_size: uint16 would silently wrap it (70000 -> 4464).
    """
    ids = np.asarray(ids, dtype=np.int64)  # a list, a tuple or an array of any integer type
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise ValueError(f"token id {bad} is outside the vocabulary: ids must be 0 .. {vocab_size - 1}")
    dtype = np.uint16 if vocab_size <= 2**16 else np.int32
    return ids.astype(dtype)


def train_val_split(data: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Split the tokens in two contiguous parts: the first (1 - val_fraction) train, the rest validate.

    The first n_train = int(len(data) * (1 - val_fraction)) tokens train. Not random windows: windows
    overlap, so a validation window drawn from the middle of the text would share most of its tokens with
    its training neighbours, and the validation loss would flatter the model. Both parts are views of
    data (slices), so no token is copied.
        data=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], val_fraction=0.1 -> ([0, 1, 2, 3, 4, 5, 6, 7, 8], [9])
        data=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], val_fraction=0.5 -> ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])

    Raises ValueError unless 0 < val_fraction < 1.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be between 0 and 1 (both excluded), e.g. 0.1")
    n_train = int(len(data) * (1 - val_fraction))
    return data[:n_train], data[n_train:]


def num_windows(n_tokens: int, block_size: int) -> int:
    """How many windows of block_size + 1 consecutive tokens a text of n_tokens holds.

    A window starting at i reads tokens i .. i + block_size (x is the first block_size, y the last
    block_size), so i runs from 0 to n_tokens - block_size - 1: n_tokens - block_size windows, or none.
        n_tokens=10, block_size=4 -> 6   (starts 0, 1, 2, 3, 4, 5)
        n_tokens=5,  block_size=4 -> 1   (start 0 only: x = tokens 0..3, y = tokens 1..4)
        n_tokens=4,  block_size=4 -> 0   (x would fit, but the last target would be token 4, which is missing)
    """
    return max(0, n_tokens - block_size)


def get_window(data: np.ndarray, i: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The i-th window: x = data[i : i + block_size] and y = data[i + 1 : i + 1 + block_size].

    Both are torch.long tensors of shape (block_size,): embedding layers look rows up with int64 indices.
    Example, data = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19] (10 tokens), block_size = 4, so 6 windows:
        i=0 -> x = [10, 11, 12, 13], y = [11, 12, 13, 14]    (the first window starts at token 0)
        i=5 -> x = [15, 16, 17, 18], y = [16, 17, 18, 19]    (the last one ends exactly at the last token)
        i=6 -> IndexError (y would need an 11th token)
    Reading one column: x[t] is what the model has seen, y[t] the token it must predict next.

    Raises IndexError unless 0 <= i < num_windows(len(data), block_size).
    """
    n = num_windows(len(data), block_size)
    if not 0 <= i < n:
        valid = f"windows 0 .. {n - 1}" if n else f"no window at all (one needs {block_size + 1} tokens)"
        raise IndexError(f"window {i} does not exist: {len(data)} tokens with block_size={block_size} "
                         f"have {valid}")
    x = torch.from_numpy(data[i:i + block_size].astype(np.int64))  # (T,)
    y = torch.from_numpy(data[i + 1:i + 1 + block_size].astype(np.int64))  # (T,)
    return x, y


def get_batch(data: np.ndarray, block_size: int, batch_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size windows drawn at random (uniformly, with replacement), stacked: x, y of shape (B, T).

    Starts are drawn from 0 .. len(data) - block_size - 1, every window possible, the last one included.
    Only the drawn windows are copied and converted to torch.long, so a batch costs the same on a text of
    ten million tokens as on one of a thousand. Pass a seeded torch.Generator to get the same batches again.
    Example, data = [10, 11, ..., 19], block_size = 4, batch_size = 2, if the starts drawn are 5 and 0:
        x = [[15, 16, 17, 18],      y = [[16, 17, 18, 19],
             [10, 11, 12, 13]]           [11, 12, 13, 14]]

    Raises ValueError when data is too short for one window (block_size + 1 tokens).
    """
    n = len(data)
    if n < block_size + 1:
        raise ValueError(f"the text has {n} tokens; one window of block_size={block_size} "
                         f"needs {block_size + 1}: use a longer text or a smaller block_size")
    # randint's upper bound is exclusive: starts 0 .. n - block_size - 1, i.e. num_windows of them.
    starts = torch.randint(n - block_size, (batch_size,), generator=generator)  # (B,)
    # One fancy index gathers every window at once: row b is starts[b] + [0, 1, ..., T-1]. On 10 million
    # tokens this is 2.5x (B=8, T=64) to 10x (B=32, T=64) faster than a Python loop of slices + torch.stack.
    idx = starts.numpy()[:, None] + np.arange(block_size)  # (B, T)
    x = torch.from_numpy(data[idx].astype(np.int64))  # (B, T)
    y = torch.from_numpy(data[idx + 1].astype(np.int64))  # (B, T), the same windows one token later
    return x, y
