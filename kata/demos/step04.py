"""Step 4 live: one attention head reads a corpus sentence; its weights drawn as a text heatmap."""

import torch

from . import load
from .step03 import short_sentence, tokenizer


def heatmap_sentence():
    """(piece, vocab_size, which, sentence, ids): a corpus sentence of up to 12 tokens, one heatmap column each."""
    encode, piece, vocab_size, which = tokenizer()
    sentence = short_sentence(encode)
    return piece, vocab_size, which, sentence, encode(sentence)[:12]

SHADES = " .:-=+*#%@"  # from weight 0 (a space: the masked future) to weight 1


def shade(w: float) -> str:
    """A weight in [0, 1] as one character: exactly 0 is blank, anything above 0 shows at least a dot."""
    if w <= 0.0:
        return SHADES[0]
    return SHADES[min(len(SHADES) - 1, 1 + int(w * (len(SHADES) - 1)))]


def heatmap_rows(att: torch.Tensor, width: int = 2) -> list[str]:
    """att (T, T) as T strings of T cells, each `width` characters wide."""
    return ["".join(shade(w) * width for w in row.tolist()) for row in att]


def label(text: str, size: int = 10) -> str:
    return text if len(text) <= size else text[:size - 1] + "~"


def run(pkg: str) -> None:
    step = load(pkg, "step04_attention")
    emb_step = load(pkg, "step03_embeddings")
    piece, vocab_size, which, sentence, ids = heatmap_sentence()
    T = len(ids)

    torch.manual_seed(0)
    config = step.GPTConfig(vocab_size=vocab_size, block_size=64, n_embd=64, dropout=0.0)
    emb, head = emb_step.Embeddings(config).eval(), step.Head(config, 16).eval()
    with torch.no_grad():
        x = emb(torch.tensor([ids]))                                   # (1, T, 64)
        q, k, v = head.query(x), head.key(x), head.value(x)            # (1, T, 16) each
        y, att = step.causal_attention(q, k, v)                        # (1, T, 16), (1, T, T)
    att = att[0]  # (T, T)

    print(f"{sentence!r}")
    print(f"-> {T} tokens ({which}).\n")
    print(f"One untrained head, n_embd={config.n_embd}, head_size=16:")
    print(f"  x {tuple(x.shape)} -> q, k, v {tuple(q.shape)} -> att (1, {T}, {T}) -> y {tuple(y.shape)}\n")
    print("Row t shows how much position t takes from each position (the columns),")
    print(f"shaded from 0 to 1 with '{SHADES}' (blank: exactly 0, the masked future).\n")
    pieces = [label(piece(i)) for i in ids]
    print(" " * 16 + "".join(f"{t:<3d}" for t in range(T)) + " row sum")
    for t, row in enumerate(heatmap_rows(att, width=3)):
        print(f"  {t:>2} {pieces[t]:<10} {row}  {att[t].sum().item():.2f}")
    last = T - 1
    top = att[last].topk(min(3, T))
    print(f"\nThe last token, {pieces[last]!r}, takes most from:")
    print("  " + ", ".join(f"{pieces[j]!r} ({w:.2f})" for w, j in zip(top.values.tolist(), top.indices.tolist())))
    print("Above the diagonal everything is blank: no token reads the future. Each row")
    print("sums to 1, so row 0 gives all its weight to itself and later rows share theirs.")
    print("The weights come from random q and k here: training decides what each token")
    print("looks for.")
