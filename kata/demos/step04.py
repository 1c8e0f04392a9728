"""Step 4 live: one attention head reads a corpus sentence; its weights drawn as a text heatmap."""

import torch

from . import load, residual_inputs, trained
from .step03 import short_sentence, tokenizer


def heatmap_sentence(bpe=None):
    """(piece, vocab_size, which, sentence, ids): a corpus sentence of up to 12 tokens, one heatmap column each."""
    encode, piece, vocab_size, which = tokenizer(bpe)
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


def on_previous(att: torch.Tensor) -> float:
    """The mean weight a position gives to the token just before it, over positions 1.. (att (T, T))."""
    return att.diagonal(-1).mean().item()


def previous_on_top(att: torch.Tensor) -> int:
    """In how many rows (positions 1..) the token just before gets the largest weight."""
    return sum(int(att[t].argmax()) == t - 1 for t in range(1, att.size(0)))


def looks_back(found) -> tuple[int, float]:
    """How strongly a (layer, head, att) looks one token back: rows won, then mean weight."""
    return previous_on_top(found[2]), on_previous(found[2])


def uniform_on_previous(T: int) -> float:
    """The same for attention spread evenly over the past: position t gives 1 / (t + 1) to each."""
    return sum(1 / (t + 1) for t in range(1, T)) / (T - 1)


def trained_heads(step, model, ids):
    """For every layer and head of the trained `model`: (layer, head, att (T, T)), computed by the step's
    causal_attention from that head's own slice of c_attn, on what ln_1 hands attention in that layer."""
    C, nh = model.config.n_embd, model.config.n_head
    hs = C // nh
    found = []
    with torch.no_grad():
        for layer, (x, block) in enumerate(zip(residual_inputs(model, ids), model.transformer.h)):
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)  # (1, T, C) each
            for h in range(nh):
                part = slice(h * hs, (h + 1) * hs)
                _, att = step.causal_attention(q[..., part], k[..., part], v[..., part])
                found.append((layer, h, att[0]))
    return found


def run(pkg: str) -> None:
    step = load(pkg, "step04_attention")
    emb_step = load(pkg, "step03_embeddings")
    model = trained()
    print(model.note())
    piece, vocab_size, which, sentence, ids = heatmap_sentence(model.tokenizer)
    T = len(ids)
    if model.model is not None:
        return show_trained(step, model.model, piece, which, sentence, ids)

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


def show_trained(step, model, piece, which, sentence, ids) -> None:
    """The trained head that most looks at the previous token, drawn by the step's causal_attention."""
    T = len(ids)
    heads = trained_heads(step, model, ids)
    layer, head, att = max(heads, key=looks_back)
    print(f"{sentence!r}")
    print(f"-> {T} tokens ({which}).\n")
    print(f"Your causal_attention on each of the {len(heads)} trained heads (layer, head), with q, k")
    print("and v from that head's slice of c_attn. The head that most looks one token back:")
    print(f"layer {layer}, head {head}.\n")
    pieces = [label(piece(i)) for i in ids]
    print(" " * 16 + "".join(f"{t:<3d}" for t in range(T)) + " row sum")
    for t, row in enumerate(heatmap_rows(att, width=3)):
        print(f"  {t:>2} {pieces[t]:<10} {row}  {att[t].sum().item():.2f}")
    mean = sum(on_previous(a) for _, _, a in heads) / len(heads)
    best, even = on_previous(att), uniform_on_previous(T)
    print(f"\nShaded from 0 to 1 with '{SHADES}'; just below the diagonal: the token before.")
    print(f"This head gives the previous token {best:.0%} of a row's weight on average;")
    print(f"attention spread evenly over the past would give it {even:.0%}, and all {len(heads)} heads")
    print(f"give it {mean:.0%} on average.")
    won = previous_on_top(att)
    print(f"In {won} of its {T - 1} rows the previous token gets the most weight.")
    if won >= 0.7 * (T - 1) and best >= 1.5 * even:
        print("Training taught this head to look one token back: a previous-token head, one")
        print("of the first patterns a language model learns.")
    else:
        print("No head looks one token back much more than even attention would: this model")
        print("has not learned that pattern yet (train longer, then run the demo again).")
