"""Step 2 demo: a corpus sentence cut into next-token windows, then the whole corpus served as batches."""

import torch

from kata.demos import TOKENIZER_NOTE, corpus, corpus_tokenizer, load, sample_sentence

BLOCK_SIZE = 6     # short windows, so that one fits on a line
BATCH_BLOCK = 16   # the batch at the end
BATCH_SIZE = 4


def make_tokenizer(text: str):
    """encode, a token -> its bytes, a line saying which tokenizer this is, and the vocabulary size."""
    tokenizer = corpus_tokenizer()
    return tokenizer.encode, lambda i: tokenizer.vocab[i], TOKENIZER_NOTE, tokenizer.vocab_size


def show(piece: bytes) -> str:
    """A token as text, with a space shown as "_" and a newline as "\\n", as in step 1's demo."""
    return piece.decode("utf-8", errors="replace").replace(" ", "_").replace("\n", "\\n")


def print_window(i: int, x: torch.Tensor, y: torch.Tensor, piece) -> None:
    """One window as aligned rows: position t, the ids and text of x, then of y. Column t reads down."""
    rows = [("t", [str(t) for t in range(len(x))]),
            ("x ids", [str(v) for v in x.tolist()]),
            ("x text", [show(piece(v)) for v in x.tolist()]),
            ("y text", [show(piece(v)) for v in y.tolist()]),
            ("y ids", [str(v) for v in y.tolist()])]
    widths = [max(len(cells[t]) for _, cells in rows) for t in range(len(x))]
    print(f"window {i}: x = tokens {i} .. {i + len(x) - 1}, y = tokens {i + 1} .. {i + len(x)}")
    for label, cells in rows:
        print(f"  {label:>6} | " + " ".join(cell.rjust(w) for cell, w in zip(cells, widths)))


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def run(pkg: str) -> None:
    step = load(pkg, "step02_data")
    text = corpus("en")
    encode, piece, which, vocab_size = make_tokenizer(text)
    print(f"Tokens: {which}.")

    sentence = sample_sentence("en", 0)
    data = step.as_token_array(encode(sentence), vocab_size)
    n = step.num_windows(len(data), BLOCK_SIZE)
    print(f'Sentence: "{sentence}"')
    print(f"{len(data)} tokens. With block_size={BLOCK_SIZE}, a window takes {BLOCK_SIZE + 1} of them "
          f"(x, and y one further),")
    print(f"so num_windows({len(data)}, {BLOCK_SIZE}) = {len(data)} - {BLOCK_SIZE} = {n}.")
    print("Read each column down: x[t] -> predicts y[t], having seen x[0 .. t].")
    print()
    for i in sorted({0, 1, n - 1}):
        x, y = step.get_window(data, i, BLOCK_SIZE)
        print_window(i, x, y, piece)
        print()
    x, y = step.get_window(data, 0, BLOCK_SIZE)
    seen = "".join(piece(v).decode("utf-8", errors="replace") for v in x[:3].tolist())
    print(f'In window 0, at t=2 the model has read "{seen}" and must predict '
          f'"{piece(int(y[2])).decode("utf-8", errors="replace")}".')
    print(f"The last window (start {n - 1}) ends exactly at the sentence's last token.")
    print()

    tokens = step.as_token_array(encode(text), vocab_size)
    train, val = step.train_val_split(tokens, 0.1)
    print(f"The whole corpus: {len(tokens):,} tokens as {tokens.dtype} ({tokens.nbytes / 1e3:.1f} KB; "
          f"{len(tokens) * 8 / 1e3:.1f} KB as int64).")
    print(f"train_val_split(0.1): train = tokens 0 .. {len(train) - 1:,}, val = the last {len(val):,}.")
    x, y = step.get_batch(train, BATCH_BLOCK, BATCH_SIZE, generator=torch.Generator().manual_seed(0))
    print(f"get_batch(train, block_size={BATCH_BLOCK}, batch_size={BATCH_SIZE}): "
          f"x {tuple(x.shape)}, y {tuple(y.shape)}, {x.dtype}")
    for b in range(2):
        for name, row in (("x", x[b]), ("y", y[b])):
            words = b"".join(piece(v) for v in row.tolist()).decode("utf-8", errors="replace")
            print(f"  {name}[{b}] = " + clip(repr(words), 68))
