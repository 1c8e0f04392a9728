"""Step 7 live: a sentence through one transformer block, watching the residual stream."""

import torch

from . import load, sample_sentence, trained
from .step03 import tokenizer, with_weights


def run(pkg: str) -> None:
    step = load(pkg, "step07_block")
    emb_step = load(pkg, "step03_embeddings")
    torch.manual_seed(0)
    model = trained()
    print(model.note())

    if model.model is not None:  # the first trained block, run by your Block, on the trained embeddings
        encode, piece, _, _ = tokenizer(model.tokenizer)
        ids = encode(sample_sentence())[:10]
        words = [piece(i) for i in ids]
        config = step.GPTConfig(**dict(vars(model.model.config), dropout=0.0))
        emb = with_weights(emb_step.Embeddings(config), model.model.transformer.emb)
        block = with_weights(step.Block(config), model.model.transformer.h[0])
    else:
        words = sample_sentence().split()[:10]
        vocab = sorted(set(words))
        ids = [vocab.index(w) for w in words]
        config = step.GPTConfig(block_size=16, vocab_size=len(vocab), n_embd=64, n_head=4, d_ff=256, dropout=0.0)
        emb, block = emb_step.Embeddings(config).eval(), step.Block(config).eval()

    # Listen to the block's two sublayers: what each one adds to the residual stream.
    added = {}
    hooks = [block.attn.register_forward_hook(lambda m, a, out: added.__setitem__("attn", out)),
             block.mlp.register_forward_hook(lambda m, a, out: added.__setitem__("mlp", out))]
    idx = torch.tensor([ids])
    with torch.no_grad():
        x = emb(idx)
        y = block(x)
    for hook in hooks:
        hook.remove()

    print(f"One block, n_embd={config.n_embd}, n_head={config.n_head}, d_ff={config.d_ff}: "
          f"{sum(p.numel() for p in block.parameters()):,} parameters,"
          f"\n{'the first block of the trained model' if model.model is not None else 'untrained'}.")
    print(f"In (B, T, C) = {tuple(x.shape)}, out {tuple(y.shape)}: the shape is kept, so blocks stack.\n")
    print("Length (norm) of each word's vector in the residual stream, and of what")
    print("each sublayer adds to it: x -> x + attn(ln_1(x)) -> + mlp(ln_2(x)).\n")
    unit = "token" if model.model is not None else "word"
    print(f"  {'pos':>3}  {unit:<12} {'|x| in':>8} {'+attn':>8} {'+mlp':>8} {'|x| out':>8}   moved")
    for t, word in enumerate(words):
        x_in, a, m, x_out = x[0, t].norm(), added["attn"][0, t].norm(), added["mlp"][0, t].norm(), y[0, t].norm()
        moved = (y[0, t] - x[0, t]).norm() / x_in
        print(f"  {t:>3}  {word:<12} {x_in:>8.2f} {a:>8.2f} {m:>8.2f} {x_out:>8.2f}   {moved:>5.0%}")
    if model.model is None:
        print("\nThe input goes straight through (the residual connection): each sublayer")
        print("adds a correction to it rather than replacing it. LayerNorm hands attention")
        print("and the MLP a normalised copy, while the stream itself keeps its scale.")
        print("Position 0 can only attend to itself; later words mix in the earlier ones.")
        return
    a, m = added["attn"][0].norm(dim=-1).mean().item(), added["mlp"][0].norm(dim=-1).mean().item()
    x_in = x[0].norm(dim=-1).mean().item()
    print("\nThe input goes straight through (the residual connection) and each sublayer")
    print(f"adds to it. In this trained block, attention adds {a:.2f} on average and the MLP")
    print(f"{m:.2f}, to vectors of length {x_in:.2f}: " + ("training made this block write much more"
          if max(a, m) > 2 * x_in else "the stream keeps most of what came in") + ".")
    print("LayerNorm hands each sublayer a normalised copy, whatever the stream's scale.")
