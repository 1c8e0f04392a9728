"""Step 6 live: a sentence through the feed-forward network, and the GELU curve beside ReLU."""

import torch

from . import load, sample_sentence


LO, HI, WIDTH = -0.5, 2.0, 46  # the plot's number line


def column(value: float, lo: float = LO, hi: float = HI, width: int = WIDTH) -> int:
    return round((min(max(value, lo), hi) - lo) / (hi - lo) * (width - 1))


def curve(f_values: dict[str, float]) -> str:
    """One row of a text plot: each function's value marked by its letter on a number line from lo to hi."""
    row = [" "] * WIDTH
    row[column(0.0)] = "|"  # the zero line
    for letter, value in f_values.items():
        col = column(value)
        row[col] = "*" if row[col] in "RG" else letter
    return "".join(row)


def run(pkg: str) -> None:
    step = load(pkg, "step06_feedforward")
    emb_step = load(pkg, "step03_embeddings")
    torch.manual_seed(0)

    words = sample_sentence().split()[:10]
    vocab = sorted(set(words) | {"banana"})
    config = step.GPTConfig(block_size=16, vocab_size=len(vocab), n_embd=64, d_ff=256, dropout=0.0)
    emb, mlp = emb_step.Embeddings(config).eval(), step.MLP(config).eval()
    n_mlp = sum(p.numel() for p in mlp.parameters())
    print(f"An MLP with n_embd={config.n_embd}, d_ff={config.d_ff}: {n_mlp:,} parameters "
          f"(64*256 + 256 + 256*64 + 64).")
    print("Each word's vector is widened to 256 numbers, bent by GELU, and brought back")
    print("to 64.\n")

    idx = torch.tensor([[vocab.index(w) for w in words]])
    changed_at = min(3, len(words) - 1)
    idx2 = idx.clone()
    idx2[0, changed_at] = vocab.index("banana")
    with torch.no_grad():
        y, y2 = mlp(emb(idx)), mlp(emb(idx2))
    print(f"Swap word {changed_at} ({words[changed_at]!r}) for 'banana' and see which outputs move:\n")
    print(f"  {'pos':>3}  {'word':<14} {'output change':>14}")
    for t, word in enumerate(words):
        change = (y2[0, t] - y[0, t]).norm().item()
        mark = "  <- only here" if change > 0 else ""
        print(f"  {t:>3}  {word:<14} {change:>14.4f}{mark}")
    print("\nThe MLP reads one position at a time: mixing between words is attention's job.\n")

    print("GELU (G) against ReLU (R), '*' where they meet, '|' is zero:\n")
    axis = [" "] * WIDTH
    for value in (LO, 0.0, 1.0, HI):
        label = f"{value:g}"
        start = min(column(value), WIDTH - len(label))
        axis[start:start + len(label)] = label
    print(f"  {'x':>5} {'relu':>7} {'gelu':>7}   {''.join(axis)}")
    for i in range(11):
        x = -3.0 + 0.5 * i
        g = step.gelu(torch.tensor(x)).item()
        r = max(x, 0.0)
        print(f"  {x:>5.1f} {r:>7.3f} {g:>7.3f}   {curve({'R': r, 'G': g})}".rstrip())
    print("\nFor negative x, ReLU is exactly 0; GELU dips a little below zero (least")
    print("at x = -0.75, -0.17) and is smooth everywhere, which gradients like.")
