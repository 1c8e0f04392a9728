"""Checks for step 5: multi-head causal self-attention.

The sizes are all different (B=2, T=5, n_embd=12, n_head=3, head size 4) so that a swapped axis cannot pass by
accident. Two oracles: the same weights cut into step 4 Heads, and PyTorch's own attention.
"""

import importlib
import math
import re

import pytest
import torch
import torch.nn.functional as F

B, T, C, NH, BLOCK = 2, 5, 12, 3, 8
HS = C // NH


def config(step, **overrides):
    values = dict(block_size=BLOCK, vocab_size=11, n_embd=C, n_head=NH, dropout=0.0)
    values.update(overrides)
    return step.GPTConfig(**values)


def make(step, seed=0, **overrides):
    torch.manual_seed(seed)
    attn = step.CausalSelfAttention(config(step, **overrides))
    with torch.no_grad():  # biases larger than nn.Linear's default, so that a misplaced bias shows
        for p in attn.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)
    return attn


def inputs(t=T, c=C, seed=1):
    return torch.randn(B, t, c, generator=torch.Generator().manual_seed(seed))


def by_pytorch(attn, x, n_head):
    """The oracle: the same weights, heads made by view + transpose, F.scaled_dot_product_attention."""
    b, t, c = x.shape
    hs = c // n_head
    with torch.no_grad():
        q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(c, dim=2)
        q, k, v = (z.view(b, t, n_head, hs).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, c)
        return F.linear(y, attn.c_proj.weight, attn.c_proj.bias)


def single_heads(step, attn, x, n_head):
    """Step 4 Heads, each given its slice of c_attn's weights: (side by side, before c_proj)."""
    step4 = importlib.import_module(step.__package__ + ".step04_attention")
    c = x.size(-1)
    hs = c // n_head
    W, b = attn.c_attn.weight, attn.c_attn.bias
    outs = []
    with torch.no_grad():
        for h in range(n_head):
            head = step4.Head(config(step, n_embd=c, n_head=n_head), hs)
            for part, layer in enumerate((head.query, head.key, head.value)):
                assert layer.bias is not None, "step 4's Head makes its layers without bias: pass bias=config.bias"
                rows = slice(part * c + h * hs, part * c + (h + 1) * hs)
                layer.weight.copy_(W[rows])
                layer.bias.copy_(b[rows])
            outs.append(head(x))
    return torch.cat(outs, dim=-1)  # (B, T, C)


def forward(attn, x):
    """attn(x), with torch's message about an impossible .view() turned into advice."""
    try:
        return attn(x)
    except RuntimeError as error:
        if "view size is not compatible" not in str(error):
            raise
        raise AssertionError(
            "a .view() failed on a tensor that is not contiguous: did you transpose to (B, nh, T, hs), and "
            "call .contiguous() before merging?\nSplit into heads with .view(B, T, nh, hs).transpose(1, 2); "
            "merge with y.transpose(1, 2).contiguous().view(B, T, C)"
        ) from error


def run(attn, x, flash):
    attn.flash = flash
    with torch.no_grad():
        return forward(attn, x)


def test_layers_have_the_gpt2_names_and_shapes(step):
    attn = make(step)
    names = {name: tuple(p.shape) for name, p in attn.named_parameters()}
    want = {"c_attn.weight": (3 * C, C), "c_attn.bias": (3 * C,), "c_proj.weight": (C, C), "c_proj.bias": (C,)}
    assert names == want, (
        f"expected GPT-2's two layers, c_attn (n_embd -> 3 * n_embd) and c_proj (n_embd -> n_embd); got {names}"
    )
    assert attn.flash is True, "self.flash = True is given at the end of __init__: keep it"


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
    attn = step.CausalSelfAttention(config(step, n_embd=2, n_head=2))
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
        assert torch.allclose(y, want, atol=1e-5), (
            f"expected [[1, 0], [0.5, 0.731]], got {[[round(v, 3) for v in row] for row in y[0].tolist()]}: "
            f"are the heads put back side by side with a transpose?\n"
            f"Head 0 should fill column 0 and head 1 column 1 (see this check's docstring); flash={flash}"
        )


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_equals_single_heads_built_from_the_weight_slices(step, flash):
    attn, x = make(step), inputs()
    y = run(attn, x, flash)
    heads = single_heads(step, attn, x, NH)
    want = F.linear(heads, attn.c_proj.weight, attn.c_proj.bias).detach()
    if torch.allclose(y, heads, atol=1e-5):
        raise AssertionError("the output projection is missing: the heads come out unmixed; "
                             "return self.resid_dropout(self.c_proj(y))")
    assert torch.allclose(y, want, atol=1e-5), (
        f"heads are mixed up: did you transpose (B, T, nh, hs) to (B, nh, T, hs) before attention, and back after?\n"
        f"The output differs from {NH} separate heads on slices of c_attn by up to {(y - want).abs().max().item():.3g}"
    )


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_equals_pytorch_attention_with_the_same_weights(step, flash):
    attn, x = make(step, seed=2), inputs(seed=3)
    y = run(attn, x, flash)
    want = by_pytorch(attn, x, NH)
    assert torch.allclose(y, want, atol=1e-5), (
        f"the output differs from F.scaled_dot_product_attention on the same heads by up to "
        f"{(y - want).abs().max().item():.3g} (flash={flash}): check the split into q, k, v and the reshapes"
    )


def test_one_head_is_the_step_4_head_followed_by_c_proj(step):
    attn, x = make(step, seed=4, n_head=1), inputs(seed=5)
    y = run(attn, x, True)
    want = F.linear(single_heads(step, attn, x, 1), attn.c_proj.weight, attn.c_proj.bias).detach()
    assert torch.allclose(y, want, atol=1e-5), (
        f"with n_head=1 the layer should be step 4's Head (query, key, value = the three slices of c_attn) "
        f"followed by c_proj; it differs by up to {(y - want).abs().max().item():.3g}"
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
            f"the output at positions 0 .. {t - 1} changed when the input at position {t} changed: are the "
            f"heads split with a transpose, so that each head's mask covers positions, not heads? (flash={flash})"
        )


def test_flash_and_manual_paths_agree(step):
    attn, x = make(step, seed=8), inputs(seed=9)
    fast, manual = run(attn, x, True), run(attn, x, False)
    assert torch.allclose(fast, manual, atol=1e-5), (
        f"flash=True (PyTorch's kernel) and flash=False (your causal_attention) differ by up to "
        f"{(fast - manual).abs().max().item():.3g}: both must see q, k, v as (B, nh, T, hs)"
    )


@pytest.mark.parametrize("length", [1, BLOCK], ids=["T=1", "T=block_size"])
def test_extreme_lengths_work(step, length):
    attn, x = make(step, seed=10), inputs(t=length, seed=11)
    for flash in (True, False):
        y = run(attn, x, flash)
        assert tuple(y.shape) == (B, length, C), f"T={length}: expected shape {(B, length, C)}, got {tuple(y.shape)}"
        assert torch.isfinite(y).all(), f"NaN or inf in the output for T={length} (flash={flash})"
        want = by_pytorch(attn, x, NH)
        assert torch.allclose(y, want, atol=1e-5), (
            f"T={length}: the output differs from PyTorch's attention by up to {(y - want).abs().max().item():.3g}"
        )


def test_every_parameter_gets_a_finite_nonzero_gradient(step):
    attn, x = make(step, seed=12), inputs(seed=13)
    w = torch.randn(B, T, C, generator=torch.Generator().manual_seed(14))
    (forward(attn, x) * w).sum().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}: is it used in forward (without .detach())?"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, (
            f"the gradient of {name} is zero or not finite: is it used in forward?"
        )


def test_dropout_acts_only_in_training(step):
    attn, x = make(step, seed=15, dropout=0.5), inputs(t=BLOCK, seed=16)
    attn.eval()
    assert torch.allclose(run(attn, x, True), by_pytorch(attn, x, NH), atol=1e-5), (
        "dropout is still active in eval mode: use nn.Dropout modules (they switch off after .eval())"
    )
    attn.train()
    y = run(attn, x, True)
    zeros = (y == 0).float().mean().item()
    assert 0.3 < zeros < 0.7, (
        f"no dropout on the output in training: with dropout=0.5 about half the outputs should be 0, got {zeros:.0%}\n"
        f"return self.resid_dropout(self.c_proj(y)), with self.resid_dropout = nn.Dropout(config.dropout)"
    )
