"""`python course.py inspect [PROMPT]`: look inside a trained model, through the step code that built it.

    the prompt's tokens      where the tokenizer cuts it, each piece's id, characters per token
    attention                every layer and head on the prompt: one head as a heatmap here (--layer, --head),
                             all of them in one PNG grid (--out)
    the next token           the likeliest tokens and which of them temperature, top-k and top-p keep, through
                             step 10's own filters
    the logit lens           after each block, what the model would predict if it stopped there (ln_f and
                             lm_head applied early); after the last block that is the model's own output
    neighbours               the tokens whose trained embedding points the same way as a token's (cosine)
    gradient flow            each block's gradient norm for one batch of the text, and the same model with its
                             residual connections removed

Each function here computes one of them and returns plain numbers, so that anything else that shows the model
(the demos, a browser page) can use the same computation.
"""

import argparse
import contextlib
import textwrap
import copy
import math
import sys
from pathlib import Path

from . import charts
from .errors import UserError
from .loader import add_code_choice, checkpoint_folder, learner_code, load_model, load_steps, read_text, whose_code
from .safetext import printable
from .ui import UI, escape

OUT = "lab"
TOP = 10          # tokens shown in the next-token table
NEIGHBOURS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="?", default=None, help="the text to look at (default: the corpus's first line)")
    parser.add_argument("--checkpoint", default="checkpoint", help="the trained model's folder (default checkpoint/)")
    parser.add_argument("--out", default=OUT, help=f"the folder for the attention picture (default {OUT}/)")
    parser.add_argument("--layer", type=int, default=None, help="the layer whose head is drawn here (default: last)")
    parser.add_argument("--head", type=int, default=0, help="the head drawn here (default 0)")
    parser.add_argument("--token", default=None, help="the token whose neighbours are shown (default: the prompt's last)")
    parser.add_argument("--temp", type=float, default=0.8, help="temperature for the next-token table (default 0.8)")
    parser.add_argument("--topk", type=int, default=40, help="top-k for the next-token table (default 40; 0: off)")
    parser.add_argument("--topp", type=float, default=0.9, help="top-p for the next-token table (default 0.9)")
    parser.add_argument("--text", default=None, help="the text for the gradient-flow batch (default: the bundled corpus)")
    add_code_choice(parser, "look")


# -- the computations --------------------------------------------------------------------------------------

def pieces(tokenizer, ids: list[int]) -> list[str]:
    """Each token as the text it stands for, made printable (a token may hold half a UTF-8 character)."""
    return [printable(tokenizer.decode([i])) for i in ids]


@contextlib.contextmanager
def kept_attention(model):
    """Inside: every attention layer of `model` runs step 4's hand-written causal_attention and keeps the
    weights it returns, one (B, n_head, T, T) tensor per layer in order, in the list this yields."""
    seen = []
    layers = [block.attn for block in _blocks(model)]
    modules = {sys.modules[type(a).__module__] for a in layers}
    missing = [m.__name__ for m in modules if not callable(getattr(m, "causal_attention", None))]
    if missing:
        raise UserError(f"{missing[0]} has no causal_attention function to listen in on: the attention maps need "
                        f"step 4's causal_attention, imported into step 5's module as the reference does")
    originals = {m: m.causal_attention for m in modules}
    flashes = [getattr(a, "flash", None) for a in layers]

    def keeping(original):
        def causal_attention(q, k, v, dropout_p=0.0):
            y, att = original(q, k, v, dropout_p)
            seen.append(att.detach())
            return y, att
        return causal_attention

    try:
        for m in modules:
            m.causal_attention = keeping(originals[m])
        for a in layers:
            a.flash = False
        yield seen
    finally:
        for m, f in originals.items():
            m.causal_attention = f
        for a, f in zip(layers, flashes):
            if f is not None:
                a.flash = f


def _blocks(model):
    return list(model.transformer.h)


def attention_maps(model, ids: list[int]):
    """(n_layer, n_head, T, T): row t of a head's map is how position t spreads its attention over 0 .. t."""
    import torch

    with kept_attention(model) as seen, torch.no_grad():
        model(torch.tensor([ids]))
    if len(seen) != len(_blocks(model)):
        raise UserError(f"the attention of {len(seen)} layers was seen, where the model has {len(_blocks(model))}: "
                        f"does CausalSelfAttention call causal_attention when flash is False?")
    return torch.stack([a[0] for a in seen])


def next_token(steps, model, ids: list[int], temperature: float, top_k: int, top_p: float, top: int = TOP):
    """The `top` likeliest next tokens: (id, probability, probability at `temperature`, kept by top-k, kept by
    top-p, kept by both), the filters being step 10's own, applied in sample_next's order."""
    import torch

    generation = steps.generation
    with torch.no_grad():
        logits = generation.next_token_logits(model, torch.tensor([ids]))  # (1, V)
    plain = torch.softmax(logits, dim=-1)[0]
    tempered = generation.apply_temperature(logits, temperature) if temperature > 0 else logits
    after_k = generation.top_k_filter(tempered, top_k) if top_k else tempered
    after_p = generation.top_p_filter(tempered, top_p) if top_p < 1 else tempered
    both = generation.top_p_filter(after_k, top_p) if top_p < 1 else after_k
    hot = torch.softmax(tempered, dim=-1)[0]
    order = torch.argsort(plain, descending=True)[:top].tolist()
    return [(i, plain[i].item(), hot[i].item(), bool(torch.isfinite(after_k[0, i])),
             bool(torch.isfinite(after_p[0, i])), bool(torch.isfinite(both[0, i]))) for i in order], \
        int(torch.isfinite(both[0]).sum())


def logit_lens(model, ids: list[int], top: int = 3):
    """After each block, the `top` tokens (id, probability) ln_f and lm_head would predict for the next token,
    and how far the last block's lens is from the model's own logits (0: the same computation)."""
    import torch

    with torch.no_grad():
        idx = torch.tensor([ids])
        x = model.transformer.emb(idx, 0)
        rows = []
        for block in _blocks(model):
            x = block(x)
            logits = model.lm_head(model.transformer.ln_f(x))[0, -1]
            probs = torch.softmax(logits, dim=-1)
            values, indices = probs.topk(min(top, probs.numel()))
            rows.append(list(zip(indices.tolist(), values.tolist())))
        gap = (logits - model(idx)[0][0, -1]).abs().max().item()
    return rows, gap


def neighbours(model, token: int, k: int = NEIGHBOURS):
    """The k tokens whose row of the embedding table wte is closest in direction (cosine) to `token`'s."""
    table = model.transformer.emb.wte.weight.detach()
    unit = table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)
    similarity = unit @ unit[token]
    similarity[token] = -math.inf
    values, indices = similarity.topk(min(k, table.size(0) - 1))
    return list(zip(indices.tolist(), values.tolist()))


def gradient_flow(steps, model, tokens, block_size: int, batch_size: int = 8, seed: int = 0):
    """Per block, the L2 norm of its parameters' gradient for one batch of `tokens` (the same batch for both):
    for the model as it is, and for a copy whose blocks lost their residual connections."""
    import torch

    from .experiments.blocks import NoResidual, wrap_blocks

    x, y = steps.data.get_batch(tokens, block_size, batch_size, generator=torch.Generator().manual_seed(seed))

    def norms(m):
        m.train()
        m.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=[]):
            _, loss = m(x, y)
            loss.backward()
        out = []
        for block in _blocks(m):
            grads = [p.grad for p in block.parameters() if p.grad is not None]
            out.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads)) if grads else 0.0)
        m.zero_grad(set_to_none=True)
        m.eval()
        return out

    bare = copy.deepcopy(model)
    wrap_blocks(bare, NoResidual)
    return norms(model), norms(bare)


# -- the command -------------------------------------------------------------------------------------------

def run(args, ui: UI, lang: str) -> int:
    if not 0 <= args.temp <= 100 or not 0 < args.topp <= 1 or args.topk < 0:
        raise UserError("--temp must be from 0 to 100, --topp above 0 and at most 1, --topk 0 (off) or more")
    directory = checkpoint_folder(args.checkpoint)
    steps = load_steps(whose_code(args, ui))
    with learner_code(steps.mine):
        model, tokenizer, _ = load_model(steps, directory, "cpu")
        return _show(args, ui, lang, steps, model.eval(), tokenizer, directory)


def _show(args, ui: UI, lang: str, steps, model, tokenizer, directory: Path) -> int:
    config = model.config
    text, source = read_text(args.text, False, ui, lang)
    prompt = args.prompt if args.prompt is not None else text.strip().splitlines()[0][:60]
    ids = tokenizer.encode(prompt)
    if not ids:
        raise UserError("the prompt is empty: give a few words, such as: python course.py inspect \"The cat\"")
    if len(ids) > config.block_size:
        raise UserError(f"the prompt is {len(ids)} tokens, more than the model's context of {config.block_size}: "
                        f"give a shorter one")
    layer = config.n_layer - 1 if args.layer is None else args.layer
    if not 0 <= layer < config.n_layer or not 0 <= args.head < config.n_head:
        raise UserError(f"the model has layers 0 .. {config.n_layer - 1} and heads 0 .. {config.n_head - 1}: "
                        f"--layer {layer} --head {args.head} is not one of them")
    width = min(100, ui.out.width - 1)
    shown = pieces(tokenizer, ids)
    ui.say(f"[bold]Inside {escape(str(directory))}/[/bold]: {config.n_layer} layers, {config.n_head} heads, "
           f"d_model {config.n_embd}, {config.vocab_size} tokens, context {config.block_size}.")

    ui.say("\n[bold]The prompt, as the tokenizer cuts it[/bold]")
    ui.plain("|" + "|".join(p.replace("\n", "\\n") for p in shown) + "|")
    ui.plain("ids: " + " ".join(map(str, ids)))
    ui.plain(f"{len(prompt)} characters in {len(ids)} tokens: {len(prompt) / len(ids):.2f} characters per token")

    maps = attention_maps(model, ids)
    labels = [f"{t} {p.strip() or repr(p)[1:-1]}"[:10] for t, p in enumerate(shown)]
    ui.say(f"\n[bold]Attention of layer {layer}, head {args.head}[/bold] (row t: where position t looks; "
           f"--layer, --head for another)")
    if len(ids) <= width - 11:
        ui.plain(charts.heatmap(maps[layer, args.head].tolist(), labels, labels, width=width))
    else:
        ui.plain(f"(the prompt is too long to draw in {width} columns: see the picture)")
    try:
        saved = charts.save_heatmap_grid_png(maps.tolist(), labels, Path(args.out) / "attention.png",
                                             title=f"Attention on {prompt[:40]!r}")
    except OSError as e:
        saved, problem = None, f"no picture: {e.strerror or e}"
    else:
        problem = "" if saved else f"no picture: {charts.NO_PICTURES}"
    ui.say(escape(f"Every layer and head as a picture: {saved}" if saved else problem.capitalize() + "."))

    rows, kept = next_token(steps, model, ids, args.temp, args.topk, args.topp)
    ui.say(f"\n[bold]The next token[/bold] (temperature {args.temp:g}, top-k {args.topk or 'off'}, "
           f"top-p {args.topp:g}: {kept} token{'s' if kept != 1 else ''} can be drawn)")
    ui.plain(f"{'token':<14}{'p':>8}{'p at T':>9}  top-k  top-p  drawn")
    for i, p, hot, by_k, by_p, drawn in rows:
        token = repr(pieces(tokenizer, [i])[0])[:12]
        ui.plain(f"{token:<14}{p:>8.3f}{hot:>9.3f}  {'yes' if by_k else 'no':>5}  {'yes' if by_p else 'no':>5}  "
                 f"{'yes' if drawn else 'no':>5}")

    lens, gap = logit_lens(model, ids)
    ui.say("\n[bold]The logit lens[/bold]: after each block, the likeliest next tokens if the model stopped there")
    for n, row in enumerate(lens):
        guesses = ", ".join(f"{pieces(tokenizer, [i])[0]!r} {p:.2f}" for i, p in row)
        ui.plain(textwrap.fill(f"block {n}: {guesses}", width=width, initial_indent="  ", subsequent_indent="    "))
    same = "yes" if gap < 1e-4 else f"no: they differ by {gap:.2g}"
    ui.plain(f"  the last block's lens equals the model's own output: {same}")

    token = ids[-1] if args.token is None else _token_id(tokenizer, args.token)
    near = neighbours(model, token)
    ui.say(f"\n[bold]Nearest neighbours of {pieces(tokenizer, [token])[0]!r}[/bold] in the trained embedding table "
           f"(cosine)")
    ui.plain(textwrap.fill(", ".join(f"{pieces(tokenizer, [i])[0]!r} {s:.2f}" for i, s in near), width=width,
                           initial_indent="  ", subsequent_indent="  "))

    data = steps.data.as_token_array(tokenizer.encode(text[:200_000]), tokenizer.vocab_size)
    if len(data) <= config.block_size:
        ui.say(f"\nNo gradient flow: {source} is shorter than one window of {config.block_size} tokens.")
        return 0
    with_res, without = gradient_flow(steps, model, data, config.block_size)
    ui.say(f"\n[bold]Gradient flow[/bold]: each block's gradient norm for one batch of {escape(source)}")
    ui.plain(f"{'block':<8}{'residual':>12}{'none':>12}")
    for n, (a, b) in enumerate(zip(with_res, without)):
        ui.plain(f"{n:<8}{a:>12.4f}{b:>12.4f}")
    ui.plain(textwrap.fill("Without the residual path the gradient must pass through every block above to reach "
                           "the lowest.", width=width))
    return 0


def _token_id(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise UserError(f"--token {text!r} is {len(ids)} tokens in this tokenizer: give a piece that is one token")
    return ids[0]
