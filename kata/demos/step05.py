"""Step 5 live: four attention heads read the same sentence; each has its own pattern."""

import torch

from . import load, residual_inputs, trained
from .step03 import with_weights
from .step04 import SHADES, heatmap_rows, heatmap_sentence, label, looks_back, on_previous, trained_heads


def run(pkg: str) -> None:
    step = load(pkg, "step05_multihead")
    emb_step = load(pkg, "step03_embeddings")
    model = trained()
    print(model.note())
    piece, vocab_size, which, sentence, ids = heatmap_sentence(model.tokenizer)
    T = len(ids)

    torch.manual_seed(0)
    layer = None
    if model.model is not None:
        # The layer of the head that most looks one token back (demo 4), run by your CausalSelfAttention.
        trained_model = model.model
        layer = max(trained_heads(load(pkg, "step04_attention"), trained_model, ids),
                    key=looks_back)[0]
        config = step.GPTConfig(**dict(vars(trained_model.config), dropout=0.0))
        attn = with_weights(step.CausalSelfAttention(config), trained_model.transformer.h[layer].attn)
        stream = residual_inputs(trained_model, ids)[layer]
        emb = lambda idx: trained_model.transformer.h[layer].ln_1(stream)  # noqa: E731 (what attention reads)
    else:
        config = step.GPTConfig(vocab_size=vocab_size, block_size=64, n_embd=64, n_head=4, dropout=0.0)
        emb, attn = emb_step.Embeddings(config).eval(), step.CausalSelfAttention(config).eval()

    # Listen in: run the layer's own forward on the manual path, keeping the weights causal_attention returns.
    seen = []

    def keep_weights(q, k, v, dropout_p=0.0):
        y, att = hand_written(q, k, v, dropout_p)
        seen.append(att)
        return y, att

    hand_written, attn.flash = step.causal_attention, False
    step.causal_attention = keep_weights
    try:
        with torch.no_grad():
            x = emb(torch.tensor([ids]))  # (1, T, C)
            y = attn(x)                   # (1, T, C)
    finally:
        step.causal_attention = hand_written
    att = seen[-1][0]  # (nh, T, T)
    nh, hs = config.n_head, config.n_embd // config.n_head

    print(f"{sentence!r}")
    print(f"-> {T} tokens ({which}).\n")
    print(f"n_embd={config.n_embd} split into n_head={nh} heads of hs={hs}; one c_attn makes every head's")
    print(f"q, k and v at once:\n  x {tuple(x.shape)} -> c_attn (1, {T}, {3 * config.n_embd}) -> q, k, v "
          f"(1, {nh}, {T}, {hs}) each")
    print(f"  -> att (1, {nh}, {T}, {T}) -> heads side by side (1, {T}, {config.n_embd}) -> c_proj "
          f"{tuple(y.shape)}\n")
    print("Each head's weights: row t is what position t takes from each earlier position,")
    print(f"shaded from 0 to 1 with '{SHADES}'.\n")
    if layer is not None:
        print(f"Layer {layer} of the trained model, each head's weights from your code."
              + (f" The first 4 of its {nh} heads:" if nh > 4 else ""))
    shown = min(nh, 4)  # four maps side by side fill 80 columns
    maps = [heatmap_rows(att[h], width=1) for h in range(shown)]
    print((" " * 16 + "   ".join(f"head {h}".ljust(T) for h in range(shown))).rstrip())
    pieces = [label(piece(i)) for i in ids]
    for t in range(T):
        print((f"  {t:>2} {pieces[t]:<10} " + "   ".join(m[t] for m in maps)).rstrip())
    print()
    last = T - 1
    for h in range(shown):
        j = int(att[h, last].argmax())
        print(f"  head {h}: the last token {pieces[last]!r} looks most at {pieces[j]!r} "
              f"(position {j}, weight {att[h, last, j]:.2f})")
    if layer is None:
        print("\nSame sentence, four different patterns: each head has its own slice of c_attn,")
        print("so its own queries and keys. They are random here; in a trained model, heads")
        print("specialise (once you have trained, demo 4 finds one that looks back a token).")
    else:
        back = ", ".join(f"head {h} {on_previous(att[h]):.0%}" for h in range(shown))
        print(f"\nWeight on the previous token: {back}.")
        print("Each head has its own slice of c_attn, so its own queries and keys: after")
        print("training, the heads of one layer can read the same sentence differently.")
