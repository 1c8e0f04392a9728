"""Checks for step 5: multi-head causal self-attention.

The sizes are all different (B=2, T=5, n_embd=12, n_head=3, head size 4) so that a swapped axis cannot pass by
accident. Three oracles: the layer's own parts assembled here (its c_attn, a correct split into heads, step 4's
attention, a correct merge, its c_proj), the same weights cut into step 4 Heads, and PyTorch's own attention.

A message names a mistake only when the check has confirmed it: `outputs_of_mistakes` assembles what the usual
wrong splits and merges give from the layer's own parts, and a cause is named when the output equals exactly
one of them. Otherwise the message says plainly what differs, with numbers.
"""

import importlib
import math
import re

import pytest
import torch
import torch.nn.functional as F

B, T, C, NH, BLOCK = 2, 5, 12, 3, 8
HS = C // NH

# The causes a message may name, each only once the check has seen that very mistake's output.
CUT_NO_TRANSPOSE = "q, k, v are cut into heads without the transpose: view (B, T, nh, hs), then .transpose(1, 2)"
CUT_HS_NH = "C is cut as (hs, nh) instead of (nh, hs): head h must own the slice h * hs .. (h + 1) * hs"
CUT_WRONG_AXES = "the head axis is moved with transpose(2, 3) instead of transpose(1, 2)"
MERGE_NO_TRANSPOSE = "the heads are merged without the transpose: y.transpose(1, 2) before .view(B, T, C)"
MERGE_HS_NH = "the heads are merged as (hs, nh) instead of (nh, hs): y.transpose(1, 2), then .view(B, T, C)"
NO_PROJ = "the output projection is missing: end with self.c_proj(y)"
NH_IS_HS = f"the layer makes heads of size {C // HS} instead of {HS}: self.n_head = config.n_head"


def config(step, **overrides):
    values = dict(block_size=BLOCK, vocab_size=11, n_embd=C, n_head=NH, dropout=0.0)
    values.update(overrides)
    return step.GPTConfig(**values)


def build(step, cfg):
    """CausalSelfAttention(cfg), where cfg is valid: a ValueError here is a refusal of a good configuration."""
    try:
        return step.CausalSelfAttention(cfg)
    except ValueError as error:
        raise AssertionError(f"CausalSelfAttention refused a valid configuration (n_embd={cfg.n_embd}, "
                             f"n_head={cfg.n_head}, which divides it): {error}") from None


def make(step, seed=0, **overrides):
    torch.manual_seed(seed)
    attn = build(step, config(step, **overrides))
    with torch.no_grad():  # biases larger than nn.Linear's default, so that a misplaced bias shows
        for p in attn.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)
    return attn


def inputs(t=T, c=C, seed=1, b=B):
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed))


def step4_of(step):
    return importlib.import_module(step.__package__ + ".step04_attention")


def outputs_of_mistakes(step, attn, x, flash, nh=NH):
    """The output assembled from the layer's own parts (its c_attn and c_proj, step 4's attention, nh heads),
    right (under None) and by each usual wrong split or merge."""
    step4 = step4_of(step)
    b, t, c = x.shape

    def attend(q, k, v):
        return step4.sdpa_causal_attention(q, k, v) if flash else step4.causal_attention(q, k, v)[0]

    def assemble(cut, merge=lambda y: y.transpose(1, 2).reshape(b, t, c), proj=True, heads=nh):
        hs = c // heads
        q, k, v = (cut(z, heads, hs) for z in F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(c, dim=2))
        y = merge(attend(q, k, v))
        return F.linear(y, attn.c_proj.weight, attn.c_proj.bias) if proj else y

    def right(z, heads, hs):
        return z.view(b, t, heads, hs).transpose(1, 2)  # (B, nh, T, hs)

    with torch.no_grad():
        found = {
            None: assemble(right),
            CUT_NO_TRANSPOSE: assemble(lambda z, heads, hs: z.reshape(b, heads, t, hs)),
            CUT_HS_NH: assemble(lambda z, heads, hs: z.view(b, t, hs, heads).permute(0, 3, 1, 2)),
            CUT_WRONG_AXES: assemble(lambda z, heads, hs: z.view(b, t, heads, hs).transpose(2, 3)),
            MERGE_NO_TRANSPOSE: assemble(right, merge=lambda y: y.reshape(b, t, c)),
            MERGE_HS_NH: assemble(right, merge=lambda y: y.permute(0, 2, 3, 1).reshape(b, t, c)),
            NO_PROJ: assemble(right, proj=False),
        }
        if c == C and nh == NH:
            found[NH_IS_HS] = assemble(right, heads=HS)
    return found


def same(a, b, atol=1e-5):
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, atol=atol)


def cause_of(step, attn, y, x, flash, nh=NH):
    """The one known mistake whose output equals y ("" when none does, or more than one, or y is right)."""
    found = [name for name, want in outputs_of_mistakes(step, attn, x, flash, nh).items() if same(y, want)]
    return f"{found[0]}; " if len(found) == 1 and found[0] is not None else ""


class FailedViews(torch.overrides.TorchFunctionMode):
    """Notes the shape of the first tensor a .view() could not reshape, and the shape asked for."""

    def __init__(self):
        super().__init__()
        self.failed = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except RuntimeError:
            if func is torch.Tensor.view and self.failed is None:
                shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
                self.failed = (tuple(args[0].shape), tuple(shape))
            raise


def forward(attn, x):
    """attn(x), with torch's message about an impossible .view() turned into words about that very view."""
    watch = FailedViews()
    try:
        with watch:
            return attn(x)
    except RuntimeError as error:
        if "view size is not compatible" not in str(error) or watch.failed is None:
            raise
        (b, t, c), (have, want) = x.shape, watch.failed
        nh = getattr(attn, "n_head", NH)
        hs = c // nh if isinstance(nh, int) else HS
        if have == (b, t, c) and want == (b, nh, t, hs):
            message = ("q, k, v are viewed as (B, nh, T, hs) directly, which a slice of c_attn's output cannot be: "
                       "view (B, T, nh, hs), then .transpose(1, 2)")
        elif have == (b, t, nh, hs) and want in ((b, t, c), (b, t, -1)):
            message = ("the transposed heads (B, T, nh, hs) are not contiguous in memory: add .contiguous() before "
                       "the .view(B, T, C)")
        else:
            message = f"a .view{want} of a tensor of shape {have} that is not contiguous failed"
        raise AssertionError(message) from None


def run(attn, x, flash):
    attn.flash = flash
    with torch.no_grad():
        return forward(attn, x)


def test_layers_have_the_gpt2_names_and_shapes(step):
    attn = make(step)
    names = {name: tuple(p.shape) for name, p in attn.named_parameters()}
    if names.get("c_attn.weight") == (C, C):
        raise AssertionError(f"c_attn makes n_embd numbers per position, not 3 * n_embd (q, k and v of every head): "
                             f"nn.Linear(config.n_embd, 3 * config.n_embd); got {names}")
    if "c_attn.weight" in names and ("c_attn.bias" not in names or "c_proj.bias" not in names):
        raise AssertionError("CausalSelfAttention ignores config.bias: with bias=True, c_attn and c_proj need a "
                             "bias; nn.Linear(..., bias=config.bias)")
    want = {"c_attn.weight": (3 * C, C), "c_attn.bias": (3 * C,), "c_proj.weight": (C, C), "c_proj.bias": (C,)}
    assert names == want, (
        f"expected GPT-2's two layers, c_attn (n_embd -> 3 * n_embd) and c_proj (n_embd -> n_embd); got {names}"
    )
    assert attn.flash is True, "self.flash = True is given at the end of __init__: keep it"
    lead = NH_IS_HS + "; " if getattr(attn, "n_head", None) == HS else ""
    assert getattr(attn, "n_head", None) == NH and getattr(attn, "n_embd", None) == C, (
        f"{lead}self.n_head and self.n_embd should be {NH} and {C} (from config), "
        f"got {getattr(attn, 'n_head', None)} and {getattr(attn, 'n_embd', None)}"
    )
    drop = getattr(attn, "dropout", None)
    if isinstance(drop, torch.nn.Module):
        raise AssertionError("self.dropout is a module, not the float config.dropout that forward passes as "
                             "dropout_p; name the module self.resid_dropout")
    assert isinstance(drop, float), f"self.dropout should be the float config.dropout, got {drop!r}"


@pytest.mark.parametrize("bias", [True, False])
def test_layers_follow_config_bias(step, bias):
    attn = make(step, bias=bias)
    for name in ("c_attn", "c_proj"):
        layer = getattr(attn, name, None)
        assert isinstance(layer, torch.nn.Linear), f"CausalSelfAttention needs an nn.Linear named {name}"
        has = layer.bias is not None
        assert has == bias, (
            f"CausalSelfAttention ignores config.bias: with bias={bias} its {name} layer "
            f"{'has' if has else 'has no'} bias; nn.Linear(..., bias=config.bias)"
        )
    x = inputs(t=4, seed=30)
    y = run(attn, x, True)
    want = outputs_of_mistakes(step, attn, x, True)[None]
    assert same(y, want), f"with bias={bias} the output differs from the layer's own parts assembled"


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_output_has_the_shape_of_the_input(step, flash):
    y = run(make(step), inputs(), flash)
    assert isinstance(y, torch.Tensor), f"forward should return a tensor, got {type(y).__name__}"
    assert tuple(y.shape) == (B, T, C), (
        f"output shape is {tuple(y.shape)}, expected (B, T, n_embd) = {(B, T, C)}: merge the heads back with "
        f"y.transpose(1, 2).contiguous().view(B, T, C)"
    )


def test_the_hand_example_with_two_heads(step):
    """n_embd = 2, n_head = 2 (hs = 1); c_attn makes q = k = v = x; c_proj is the identity; x = [[1, 0], [0, 1]].
    head 0 reads column 0: q = k = v = [1, 0] at positions 0, 1
        position 0 sees only itself: y = 1
        position 1: scores 0 * [1, 0] / sqrt(1) = [0, 0] -> att [0.5, 0.5] -> y = 0.5 * 1 + 0.5 * 0 = 0.5
    head 1 reads column 1: q = k = v = [0, 1]
        position 0: y = 0
        position 1: scores 1 * [0, 1] = [0, 1] -> att [e^0, e^1] / (e^0 + e^1) = [0.269, 0.731] -> y = 0.731
    heads side by side, then c_proj: [[1, 0], [0.5, 0.731]]
    """
    attn = build(step, config(step, n_embd=2, n_head=2))
    with torch.no_grad():
        attn.c_attn.weight.copy_(torch.eye(2).repeat(3, 1))  # (6, 2): q, k, v are copies of x
        attn.c_attn.bias.zero_()
        attn.c_proj.weight.copy_(torch.eye(2))
        attn.c_proj.bias.zero_()
    x = torch.eye(2).unsqueeze(0)  # (1, 2, 2)
    p = math.e / (1 + math.e)  # 0.731
    want = torch.tensor([[[1.0, 0.0], [0.5, p]]])
    for flash in (True, False):
        y = run(attn, x, flash)
        assert same(y, want), (
            f"{cause_of(step, attn, y, x, flash, nh=2)}expected [[1, 0], [0.5, 0.731]] (flash={flash}), got "
            f"{[[round(v, 3) for v in row] for row in y[0].tolist()]}\n"
            f"Head 0 should fill column 0 and head 1 column 1 (see this check's docstring)"
        )


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_equals_its_own_parts_assembled(step, flash):
    """The oracle: its own c_attn, a correct split, step 4's attention (the same path), a correct merge, its c_proj."""
    attn, x = make(step), inputs()
    y = run(attn, x, flash)
    want = outputs_of_mistakes(step, attn, x, flash)[None]
    assert same(y, want), (
        f"{cause_of(step, attn, y, x, flash)}the output differs from c_proj(merge(attention(split(c_attn(x))))), "
        f"assembled from the layer's own parts, by up to "
        + (f"{(y - want).abs().max().item():.3g}" if y.shape == want.shape else f"its shape {tuple(y.shape)}")
        + f" (flash={flash})"
    )


def test_equals_single_heads_built_from_the_weight_slices(step):
    """Step 4 Heads, head h given rows h * hs .. (h + 1) * hs of c_attn's q, k and v parts, side by side, then c_proj."""
    attn, x = make(step), inputs()
    y = run(attn, x, False)
    step4 = step4_of(step)
    W, b = attn.c_attn.weight, attn.c_attn.bias
    outs = []
    with torch.no_grad():
        for h in range(NH):
            head = step4.Head(config(step), HS)
            for part, layer in enumerate((head.query, head.key, head.value)):
                rows = slice(part * C + h * HS, part * C + (h + 1) * HS)
                layer.weight.copy_(W[rows])
                layer.bias.copy_(b[rows])
            outs.append(head(x))
        want = F.linear(torch.cat(outs, dim=-1), attn.c_proj.weight, attn.c_proj.bias)
    assert same(y, want), (
        f"{cause_of(step, attn, y, x, False)}the output differs from {NH} step 4 Heads on the slices of c_attn, side "
        f"by side, then c_proj, by up to "
        + (f"{(y - want).abs().max().item():.3g}" if y.shape == want.shape else f"its shape {tuple(y.shape)}")
    )


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_equals_pytorch_attention_with_the_same_weights(step, flash):
    """An oracle independent of step 4: the same weights, F.scaled_dot_product_attention on every head."""
    attn, x = make(step, seed=2), inputs(seed=3)
    y = run(attn, x, flash)
    with torch.no_grad():
        q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(C, dim=2)
        q, k, v = (z.view(B, T, NH, HS).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        want = F.linear(heads, attn.c_proj.weight, attn.c_proj.bias)
    if not same(y, want):
        own = same(y, outputs_of_mistakes(step, attn, x, flash)[None])
        raise AssertionError(
            f"{cause_of(step, attn, y, x, flash)}the output differs from F.scaled_dot_product_attention on the same "
            f"heads by up to "
            + (f"{(y - want).abs().max().item():.3g}" if y.shape == want.shape else f"its shape {tuple(y.shape)}")
            + f" (flash={flash})"
            + ("; it equals its own parts assembled, so step 4's causal_attention is what differs" if own else "")
        )


def test_one_head_is_the_step_4_head_followed_by_c_proj(step):
    attn, x = make(step, seed=4, n_head=1), inputs(seed=5)
    y = run(attn, x, True)
    with torch.no_grad():
        q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(C, dim=2)
        want = F.linear(F.scaled_dot_product_attention(q, k, v, is_causal=True), attn.c_proj.weight, attn.c_proj.bias)
    assert same(y, want), (
        "with n_head=1 the layer should be one attention on the three slices of c_attn followed by c_proj; "
        "it differs by up to "
        + (f"{(y - want).abs().max().item():.3g}" if y.shape == want.shape else f"its shape {tuple(y.shape)}")
    )


@pytest.mark.parametrize("n_embd, n_head", [(10, 4), (12, 5), (64, 3)])
def test_n_embd_not_divisible_by_n_head_is_refused_clearly(step, n_embd, n_head):
    cfg = config(step, n_embd=n_embd, n_head=n_head)
    try:
        step.CausalSelfAttention(cfg)
    except ValueError as error:
        message = str(error)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(
            f"n_embd={n_embd}, n_head={n_head} raised {type(error).__name__}, not ValueError: check "
            f"n_embd % n_head first and raise ValueError saying it must be divisible"
        ) from error
    else:
        raise AssertionError(
            f"n_embd={n_embd} is not divisible by n_head={n_head}, but the layer was built: raise ValueError"
        )
    named = re.search(rf"\b{n_embd}\b", message) and re.search(rf"\b{n_head}\b", message)
    assert named, f"the ValueError should name both numbers, {n_embd} and {n_head}; got: {message!r}"


@pytest.mark.parametrize("n_embd, n_head", [(12, 1), (12, 12), (8, 2)])
def test_every_divisible_configuration_is_accepted(step, n_embd, n_head):
    attn = build(step, config(step, n_embd=n_embd, n_head=n_head))
    x = inputs(t=3, c=n_embd, seed=31, b=1)
    y = run(attn, x, True)
    assert tuple(y.shape) == (1, 3, n_embd), f"n_embd={n_embd}, n_head={n_head}: expected shape {(1, 3, n_embd)}"
    want = outputs_of_mistakes(step, attn, x, True, nh=n_head)[None]
    assert same(y, want), f"n_embd={n_embd}, n_head={n_head}: the output differs from its own parts assembled"


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_later_positions_never_change_earlier_outputs(step, flash):
    attn = make(step, seed=6)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, T, C, generator=g)
    y = run(attn, x, flash)
    for t in range(1, T):
        x2 = x.clone()
        x2[:, t:] = torch.randn(B, T - t, C, generator=g)
        y2 = run(attn, x2, flash)
        assert torch.allclose(y2[:, :t], y[:, :t], atol=1e-5), (
            f"{cause_of(step, attn, y, x, flash)}the output at positions 0 .. {t - 1} changed by up to "
            f"{(y2[:, :t] - y[:, :t]).abs().max().item():.3g} when the input from position {t} on changed "
            f"(flash={flash})"
        )


def test_flash_and_manual_paths_agree(step):
    attn, x = make(step, seed=8), inputs(seed=9)
    fast, manual = run(attn, x, True), run(attn, x, False)
    assert torch.allclose(fast, manual, atol=1e-5), (
        f"flash=True (PyTorch's kernel) and flash=False (your causal_attention) differ by up to "
        f"{(fast - manual).abs().max().item():.3g}"
    )


@pytest.mark.parametrize("length, batch", [(1, B), (BLOCK, B), (4, 1)], ids=["T=1", "T=block_size", "batch 1"])
def test_extreme_lengths_work(step, length, batch):
    attn, x = make(step, seed=10), inputs(t=length, seed=11, b=batch)
    for flash in (True, False):
        y = run(attn, x, flash)
        assert tuple(y.shape) == (batch, length, C), (
            f"T={length}, batch {batch}: expected shape {(batch, length, C)}, got {tuple(y.shape)}"
        )
        assert torch.isfinite(y).all(), f"NaN or inf in the output for T={length}, batch {batch} (flash={flash})"
        want = outputs_of_mistakes(step, attn, x, flash)[None]
        assert same(y, want), (
            f"{cause_of(step, attn, y, x, flash)}T={length}, batch {batch}: the output differs from its own parts "
            f"assembled by up to {(y - want).abs().max().item():.3g} (flash={flash})"
        )


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_gradients_are_right_by_finite_differences(step, flash):
    """gradcheck in float64 on a tiny layer (n_embd 4, n_head 2, T 3), for the input and every parameter."""
    torch.manual_seed(32)
    attn = build(step, config(step, n_embd=4, n_head=2)).double()
    attn.flash = flash
    names = [name for name, _ in attn.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in attn.parameters())
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)

    def go(x, *ps):
        return torch.func.functional_call(attn, dict(zip(names, ps)), (x,))

    forward(attn, x.detach())  # a failing .view() is explained here
    y = go(x, *params)
    assert y.dtype == torch.float64, f"on float64 x the layer (made .double()) gave {y.dtype}: keep the dtype"
    try:
        torch.autograd.gradcheck(go, (x, *params), eps=1e-6, atol=1e-5)
    except torch.autograd.gradcheck.GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"the gradients disagree with finite differences (float64 gradcheck, "
                             f"flash={flash}): {first}") from None


def test_every_parameter_and_the_input_get_a_finite_nonzero_gradient(step):
    attn = make(step, seed=12)
    x = inputs(seed=13).requires_grad_()
    frozen = [name for name, p in attn.named_parameters() if not p.requires_grad]
    assert not frozen, f"these parameters do not learn (requires_grad is False): {frozen}"
    w = torch.randn(B, T, C, generator=torch.Generator().manual_seed(14))
    (forward(attn, x) * w).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input x: is anything detached?"
    for name, p in attn.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}: is it used in forward (without .detach())?"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, (
            f"the gradient of {name} is zero or not finite: is it used in forward?"
        )


def test_output_dropout_zeroes_outputs_and_scales_the_rest(step, monkeypatch):
    """dropout=0.2, training, attention dropout switched off (inside the fused kernel) to watch the output alone:
    each output z becomes 0 (about 20%) or z / 0.8. c_proj is square and invertible, so the vector that went
    into it can be recovered: (out - bias) @ W^-T."""
    p = 0.2
    attn = make(step, seed=15, dropout=p).double()
    fused = step4_of(step).sdpa_causal_attention
    monkeypatch.setattr(step, "sdpa_causal_attention", lambda q, k, v, dropout_p=0.0: fused(q, k, v))
    x = inputs(t=BLOCK, seed=16).double()
    attn.eval()
    clean = run(attn, x, True)
    attn.train()
    torch.manual_seed(33)
    out = run(attn, x, True)
    if torch.equal(out, clean):
        raise AssertionError(f"no dropout on the output in training: with dropout={p} the output equals the eval "
                             f"output; return self.resid_dropout(self.c_proj(y)), resid_dropout = "
                             f"nn.Dropout(config.dropout)")
    zero = out == 0
    share = zero.double().mean().item()
    for rate, cause in ((p, ""), (0.5, "nn.Dropout() without config.dropout drops with the default p=0.5; ")):
        if torch.allclose(out[~zero], clean[~zero] / (1 - rate), atol=1e-9) and abs(share - rate) < 0.1:
            if cause:
                raise AssertionError(f"{cause}{share:.0%} of the outputs were dropped, not about {p:.0%}")
            break
    else:
        W, b = attn.c_proj.weight, attn.c_proj.bias
        into = (out - b) @ torch.linalg.inv(W).T  # what went into c_proj
        into_clean = (clean - b) @ torch.linalg.inv(W).T
        dropped = into.abs() < 1e-9
        if dropped.any() and torch.allclose(into[~dropped], into_clean[~dropped] / (1 - p), atol=1e-8):
            raise AssertionError(f"dropout before c_proj: {dropped.double().mean().item():.0%} of c_proj's inputs were "
                                 f"dropped; drop its output instead, self.resid_dropout(self.c_proj(y))")
        raise AssertionError(f"with dropout={p} in training each output z should become 0 (about {p:.0%}) or "
                             f"z / {1 - p:g}; {share:.0%} are 0 and the rest differ by up to "
                             f"{(out[~zero] - clean[~zero] / (1 - p)).abs().max().item():.3g}")


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_nothing_is_dropped_in_eval_mode(step, flash):
    attn, x = make(step, seed=17, dropout=0.5), inputs(t=BLOCK, seed=18)
    attn.eval()
    y = run(attn, x, flash)
    want = outputs_of_mistakes(step, attn, x, flash)[None]
    if not same(y, want):
        zeros = (y == 0).double().mean().item()
        raise AssertionError(
            (f"the output still drops in eval mode: {zeros:.0%} of it is 0; use the nn.Dropout module "
             f"self.resid_dropout, which switches off after .eval()" if zeros > 0.2 else
             f"{cause_of(step, attn, y, x, flash)}in eval mode with dropout=0.5 the output differs from its own "
             f"parts assembled (no dropout) by up to {(y - want).abs().max().item():.3g}") + f" (flash={flash})"
        )
    assert not attn.training, "calling the layer switched it back to training mode"


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_attention_dropout_acts_in_training(step, flash):
    """dropout=0.5, training, resid_dropout switched off: the attention weights alone are dropped, so the output
    differs from the eval output, and the same seed gives the same output."""
    attn, x = make(step, seed=19, dropout=0.5), inputs(t=BLOCK, seed=20)
    if isinstance(getattr(attn, "resid_dropout", None), torch.nn.Dropout):
        attn.resid_dropout.p = 0.0
    attn.eval()
    clean = run(attn, x, flash)
    attn.train()
    torch.manual_seed(34)
    y = run(attn, x, flash)
    torch.manual_seed(34)
    again = run(attn, x, flash)
    assert not torch.allclose(y, clean, atol=1e-6), (
        f"in training with dropout=0.5 the attention weights were not dropped (flash={flash}): the output equals "
        f"the eval output; self.dropout = config.dropout is what forward passes as dropout_p"
    )
    assert torch.equal(y, again), f"the same torch.manual_seed gave two different outputs (flash={flash})"


def test_a_call_changes_neither_its_input_nor_its_mode_nor_the_random_stream(step):
    attn, x = make(step, seed=21), inputs(seed=22)
    x0 = x.clone()
    attn.eval()
    rng = torch.get_rng_state()
    y1 = run(attn, x, True)
    assert torch.equal(x, x0), f"the call changed its input x, by up to {(x - x0).abs().max().item():.3g}"
    assert not attn.training, "the call switched the layer to training mode"
    assert torch.equal(torch.get_rng_state(), rng), "in eval mode the call drew random numbers"
    assert torch.equal(run(attn, x, True), y1), "two calls on the same x gave different outputs"


def test_float64_and_non_contiguous_inputs_work(step):
    attn = make(step, seed=23).double()
    x = inputs(seed=24).double()
    y = run(attn, x, False)
    assert y.dtype == torch.float64, f"float64 x and weights gave {y.dtype}: keep the input's dtype"
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # the same numbers, not contiguous
    assert same(run(attn, xt, False), y, atol=1e-10), "a non-contiguous x with the same numbers gave another output"


def test_runs_on_the_device_of_its_input(step):
    """On the meta device (shapes only): a tensor made without device= would sit on the CPU."""
    attn = make(step, seed=25).to("meta")
    x = torch.randn(B, T, C, device="meta")
    for flash in (True, False):
        attn.flash = flash
        try:
            y = forward(attn, x)
        except NotImplementedError:
            raise
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise AssertionError(f"the layer fails on the meta device (flash={flash}): {first}") from None
        assert y.device.type == "meta" and tuple(y.shape) == (B, T, C), (
            f"on the meta device the output should be a meta tensor of shape {(B, T, C)}, got {y.device} "
            f"{tuple(y.shape)}"
        )
