"""Step 8 live: the whole GPT, untrained, on the bundled corpus: its parameters, its loss, its guesses."""

import math

import torch

from . import corpus, corpus_tokenizer, load, sample_sentence




def tokenizer_for(text: str):
    """(vocab_size, encode, token_bytes): the reference tokenizer on the corpus; token_bytes(id) is its bytes."""
    tok = corpus_tokenizer()
    return tok.vocab_size, tok.encode, (lambda i: tok.vocab[i])


def shown(token: bytes) -> str:
    """A token as text in quotes, or as bytes when it is only a piece of a multi-byte character."""
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)


def count(modules) -> int:
    """The number of parameters in these modules."""
    return sum(p.numel() for m in modules for p in m.parameters())


def run(pkg: str) -> None:
    step = load(pkg, "step08_gpt")
    text = corpus()
    vocab_size, encode, token_bytes = tokenizer_for(text)
    torch.manual_seed(0)
    config = step.GPTConfig(vocab_size=vocab_size)  # the course's defaults: 4 layers, n_embd 64, d_ff 256
    model = step.GPT(config).eval()
    V, C, L, F, P = config.vocab_size, config.n_embd, config.n_layer, config.d_ff, config.block_size

    print(f"An untrained GPT: vocab_size V={V}, block_size P={P}, n_embd C={C},")
    print(f"n_head={config.n_head}, n_layer L={L}, d_ff F={F}. Its parameters, part by part:\n")
    blocks = model.transformer.h
    parts = [
        ("token embedding wte (V*C)", count([model.transformer.emb.wte]), V * C),
        ("position embedding wpe (P*C)", count([model.transformer.emb.wpe]), P * C),
        (f"{L} x LayerNorms ln_1, ln_2 (4C)", count([m for b in blocks for m in (b.ln_1, b.ln_2)]), L * 4 * C),
        (f"{L} x attention (3C*C+3C + C*C+C)", count([b.attn for b in blocks]), L * (4 * C * C + 4 * C)),
        (f"{L} x MLP (C*F+F + F*C+C)", count([b.mlp for b in blocks]), L * (2 * C * F + F + C)),
        ("final LayerNorm ln_f (2C)", count([model.transformer.ln_f]), 2 * C),
        ("lm_head (tied to wte)", 0, 0),
    ]
    print(f"  {'part':<36} {'counted':>9} {'formula':>9}")
    for name, counted, formula in parts:
        print(f"  {name:<36} {counted:>9,} {formula:>9,}")
    total = sum(formula for _, _, formula in parts)
    print(f"  {'total':<36} {model.num_params():>9,} {total:>9,}"
          f"   {'(equal)' if model.num_params() == total else '(DIFFERENT)'}\n")

    ids = torch.tensor(encode(text[:20_000]))
    n = (len(ids) - 1) // P
    x = ids[: n * P].view(n, P)[:8]
    y = ids[1: n * P + 1].view(n, P)[:8]
    with torch.no_grad():
        _, loss = model(x, y)
    print(f"Loss on {x.numel():,} corpus tokens: {loss.item():.3f}; ln({V}) = {math.log(V):.3f}, the loss of a")
    print("uniform guess. Small initial weights (std 0.02) make the untrained model")
    print("guess nearly uniformly: it starts knowing nothing, and says so.\n")

    prompt = sample_sentence(index=1)
    words = prompt.split()
    prompt = " ".join(words[: max(1, len(words) - 2)])
    idx = torch.tensor([encode(prompt)[-P:]])
    with torch.no_grad():
        logits, _ = model(idx)
    probs = torch.softmax(logits[0, -1], dim=-1)
    top = torch.topk(probs, 10)
    print(f"The 10 likeliest next tokens after {prompt!r}")
    print(f"('|' marks 1/{V}, the probability of a uniform guess):\n")
    per_char = 0.005 / 40  # a bar of 40 characters is a probability of 0.005
    uniform = round(1 / V / per_char)
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        bar = list("#" * round(p / per_char) + " " * uniform)
        bar[uniform] = "|"
        print(f"  {shown(token_bytes(i)):<14} {p:7.4f}  {''.join(bar).rstrip()}")
    print(f"\nEven the favourites stay close to 1/{V} = {1 / V:.4f}: the untrained model has no")
    print("real preferences yet. Training (step 9) is what makes the right words stand out.")
