"""Checks for step 7: LayerNorm and the pre-norm transformer block.

Distinct sizes throughout (B=2, T=5, n_embd=12, n_head=3, head size 4, d_ff=20, block_size=8), so that a
swapped axis cannot pass by accident. The block's LayerNorms get random weights and biases, so that ln_1 and
ln_2 are told apart and a LayerNorm that ignores its weight is caught.
"""

import pytest
import torch
import torch.nn as nn

B, T, C, NH, D_FF, BLOCK = 2, 5, 12, 3, 20, 8


def inputs(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def config(step, dropout=0.0):
    return step.GPTConfig(block_size=BLOCK, vocab_size=11, n_embd=C, n_head=NH, d_ff=D_FF, dropout=dropout)


def make_block(step):
    """A block in eval mode with random LayerNorm weights and biases (they start at 1 and 0)."""
    torch.manual_seed(0)
    block = step.Block(config(step)).eval()
    with torch.no_grad():
        for ln in (block.ln_1, block.ln_2):
            ln.weight.copy_(1 + 0.5 * torch.randn(C))
            ln.bias.copy_(0.3 * torch.randn(C))
    return block


def make_layernorm(step, n=C, bias=True, seed=0):
    """The learner's LayerNorm and PyTorch's nn.LayerNorm with the same random weight (and bias)."""
    ours = step.LayerNorm(n, bias=bias)
    theirs = nn.LayerNorm(n, eps=1e-5, bias=bias)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.weight.copy_(1 + 0.5 * torch.randn(n, generator=g))
        theirs.weight.copy_(ours.weight)
        if bias:
            ours.bias.copy_(torch.randn(n, generator=g))
            theirs.bias.copy_(ours.bias)
    return ours, theirs


def layernorm_variants(x, weight, bias):
    """The usual wrong LayerNorms, each with the words that name its mistake."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    shift = bias if bias is not None else 0
    return [
        ((x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + 1e-5) * weight + shift,
         "the variance divides by n - 1 (unbiased): LayerNorm uses the biased variance, x.var(-1, unbiased=False)"),
        ((x - mean) / torch.sqrt(var) * weight + shift,
         "eps is missing: divide by sqrt(var + eps), so that a constant vector does not divide by zero"),
        ((x - mean) / (torch.sqrt(var) + 1e-5) * weight + shift,
         "eps is added outside the square root: divide by sqrt(var + eps)"),
        ((x - mean) / torch.sqrt(var + 1e-5),
         "the weight and bias are not applied: multiply by self.weight, then add self.bias"),
        ((x - mean) / torch.sqrt(var + 1e-5) * weight,
         "the bias is not added after scaling by the weight"),
    ]


def test_layernorm_of_the_hand_example(step):
    """x = [1, 3] -> mean 2, biased var ((1 - 2)**2 + (3 - 2)**2) / 2 = 1
    -> (x - 2) / sqrt(1 + 1e-5) = [-0.999995, 0.999995]
    -> * weight [2, 1] + bias [0, 0.5] = [-1.99999, 1.499995]
    (without eps: [-2, 1.5]; with the unbiased variance 2: [-1.41421, 1.20711])
    """
    ln = step.LayerNorm(2)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([2.0, 1.0]))
        ln.bias.copy_(torch.tensor([0.0, 0.5]))
    got = ln(torch.tensor([[1.0, 3.0]]))
    want = torch.tensor([[-1.99999, 1.499995]])
    words = "LayerNorm should compute (x - mean) / sqrt(var + eps) * weight + bias over the last axis"
    if isinstance(got, torch.Tensor) and got.shape == want.shape:
        if torch.allclose(got, torch.tensor([[-2.0, 1.5]]), atol=2e-6):
            words = "eps is missing: divide by sqrt(var + eps), with eps = self.eps (1e-5)"
        elif torch.allclose(got, torch.tensor([[-1.41421, 1.20711]]), atol=1e-4):
            words = ("the variance divides by n - 1 (unbiased): LayerNorm uses the biased variance, "
                     "x.var(-1, unbiased=False)")
    assert isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want, atol=2e-6), (
        f"{words}\nLayerNorm([1, 3]) with weight [2, 1] and bias [0, 0.5] should be [-1.99999, 1.499995], got "
        f"{got.tolist() if isinstance(got, torch.Tensor) else got!r}"
    )


@pytest.mark.parametrize("bias", [True, False], ids=["with-bias", "without-bias"])
def test_layernorm_equals_pytorch_layernorm(step, bias):
    """Random weight and bias, eps 1e-5; rows on very different scales (0.003 to 30) and offsets, so that the
    eps and the variance's divisor both show."""
    ours, theirs = make_layernorm(step, bias=bias)
    scale = torch.tensor([0.003, 0.01, 0.1, 1.0, 30.0]).view(1, 5, 1)
    x = inputs(B, 5, C) * scale + 2.0 * inputs(B, 5, 1, seed=2)
    want = theirs(x)
    try:
        got = ours(x)
    except TypeError as error:
        assert bias, f"with bias=False, self.bias is None: add it only when it is not None ({error})"
        raise
    assert isinstance(got, torch.Tensor) and got.shape == x.shape, (
        f"LayerNorm should keep the input's shape {tuple(x.shape)}, got {getattr(got, 'shape', got)!r}"
    )
    if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        for wrong, words in layernorm_variants(x, ours.weight, ours.bias):
            assert not torch.allclose(got, wrong, atol=1e-4, rtol=1e-4), words
    worst = (got - want).abs().max().item()
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (
        f"LayerNorm differs from nn.LayerNorm (same weight{' and bias' if bias else ''}, eps 1e-5) by up to "
        f"{worst:.2e}: compute (x - mean) / sqrt(var + eps) * weight + bias over the last axis"
        + ("" if bias else "\nwith bias=False, self.bias is None: add it only when it is not None")
    )


@pytest.mark.parametrize("shape", [(4, C), (B, T, C), (3, 2, 2, C)], ids=["2d", "3d", "4d"])
def test_layernorm_normalises_over_the_last_axis(step, shape):
    """With weight 1 and bias 0, every vector along the last axis comes out with mean 0 and variance ~1."""
    ln = step.LayerNorm(C)
    x = inputs(*shape) * 3 + 1
    y = ln(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape, (
        f"LayerNorm should keep the shape {shape}, got {getattr(y, 'shape', y)!r}"
    )
    mean, var = y.mean(-1), y.var(-1, unbiased=False)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5), (
        f"the output vectors do not have mean 0 over the last axis (up to {mean.abs().max().item():.3f}): "
        f"normalise over dim=-1 with keepdim=True"
    )
    n = shape[-1]
    assert not torch.allclose(var, torch.full_like(var, (n - 1) / n), atol=1e-3), (
        f"the output's variance is (n - 1) / n = {(n - 1) / n:.3f}, not 1: the variance divides by n - 1 (unbiased); "
        f"LayerNorm uses the biased variance, x.var(-1, unbiased=False)"
    )
    assert torch.allclose(var, torch.ones_like(var), atol=1e-3), (
        f"the output vectors do not have variance 1 over the last axis (from {var.min().item():.3f} to "
        f"{var.max().item():.3f}): divide by sqrt(var + eps) with var taken over dim=-1"
    )


def test_layernorm_of_a_constant_vector_is_its_bias(step):
    """x = [5, 5, ..., 5]: mean 5, var 0 -> (x - 5) / sqrt(0 + eps) = 0 -> 0 * weight + bias = bias."""
    ln, _ = make_layernorm(step)
    y = ln(torch.full((1, C), 5.0))
    assert torch.isfinite(y).all(), (
        "LayerNorm of a constant vector gave nan or inf: eps is missing, divide by sqrt(var + eps)"
    )
    assert torch.allclose(y, ln.bias.detach().view(1, C), atol=1e-5), (
        "LayerNorm of a constant vector should be exactly the bias (the normalised part is 0)"
    )


@pytest.mark.parametrize("t", [1, T, BLOCK])
def test_block_keeps_the_shape(step, t):
    block = make_block(step)
    y = block(inputs(B, t, C))
    assert isinstance(y, torch.Tensor), f"forward should return a tensor, got {type(y).__name__}"
    assert tuple(y.shape) == (B, t, C), (
        f"the block's output has shape {tuple(y.shape)}, expected (B, T, C) = {(B, t, C)}"
    )
    assert torch.isfinite(y).all(), f"the block's output has nan or inf at T = {t}"


def test_block_uses_the_gpt2_names(step):
    block = make_block(step)
    kinds = {name: type(module).__name__ for name, module in block.named_children()}
    want = {"ln_1": "LayerNorm", "attn": "CausalSelfAttention", "ln_2": "LayerNorm", "mlp": "MLP"}
    assert kinds == want, (
        f"the block's parts should be ln_1 (LayerNorm), attn (CausalSelfAttention), ln_2 (LayerNorm) and mlp (MLP), "
        f"as in GPT-2; got {kinds}"
    )


def test_block_is_causal(step):
    """Change the input at position 3: outputs at positions 0, 1, 2 must not move; position 3 must."""
    block = make_block(step)
    x = inputs(B, T, C)
    y = block(x)
    x2 = x.clone()
    x2[:, 3] = inputs(B, C, seed=9)
    y2 = block(x2)
    moved = (y2 - y).abs().amax(dim=(0, 2))  # (T,)
    assert moved[:3].max() < 1e-6, (
        f"changing the input at position 3 changed the outputs before it (by {moved[:3].tolist()}): "
        f"a position must not see the future; call self.attn, the causal attention of step 5"
    )
    assert moved[3] > 1e-4, "changing the input at position 3 did not change the output there"


def test_block_has_residual_connections(step):
    """Zero the output projections (c_proj weight and bias) of attn and mlp: each sublayer then adds 0, so a
    block with residual connections returns its input unchanged."""
    block = make_block(step)
    with torch.no_grad():
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    x = inputs(B, T, C)
    y = block(x)
    assert not torch.allclose(y, block.ln_2(block.ln_1(x)), atol=1e-5), (
        "the block normalises after adding (post-norm): GPT-2 normalises the sublayer's input (pre-norm), "
        "x = x + self.attn(self.ln_1(x), cache)"
    )
    assert torch.allclose(y, x, atol=1e-6), (
        "with the sublayers' output projections zeroed the block changed its input: is there a residual "
        "connection x + ...?\nwrite x = x + self.attn(self.ln_1(x), cache), then x = x + self.mlp(self.ln_2(x))"
    )


def test_block_is_pre_norm_as_in_gpt2(step):
    """The oracle, from the block's own parts: x1 = x + attn(ln_1(x)), then y = x1 + mlp(ln_2(x1))."""
    block = make_block(step)
    ln_1, attn, ln_2, mlp = block.ln_1, block.attn, block.ln_2, block.mlp
    x = inputs(B, T, C) * 2
    x1 = x + attn(ln_1(x))
    want = x1 + mlp(ln_2(x1))
    post_norm = ln_2(ln_1(x + attn(x)) + mlp(ln_1(x + attn(x))))
    assert not torch.allclose(want, post_norm, atol=1e-3), "the check's inputs do not separate pre- and post-norm"
    wrong = [
        (post_norm, "the block normalises after adding (post-norm): GPT-2 normalises the sublayer's input (pre-norm)"),
        (x1 + mlp(ln_1(x1)), "the MLP reads ln_1's output: ln_1 feeds attn and ln_2 feeds mlp"),
        (x + attn(ln_2(x)) + mlp(ln_1(x + attn(ln_2(x)))),
         "ln_1 and ln_2 are swapped: ln_1 feeds attn, ln_2 feeds mlp"),
        (x + attn(ln_1(x)) + mlp(ln_2(x)), "the MLP reads the block's input, not x after attention was added"),
        (attn(ln_1(x)) + mlp(ln_2(attn(ln_1(x)))),
         "attention's output replaces x: there is no residual connection around attn"),
        (mlp(ln_2(x1)), "the MLP's output replaces x: there is no residual connection around the mlp"),
        (x1, "the MLP is never applied: add self.mlp(self.ln_2(x)) to x"),
    ]
    got = block(x)
    if got.shape == want.shape and not torch.allclose(got, want, atol=1e-5):
        for value, words in wrong:
            assert not torch.allclose(got, value, atol=1e-5), words
    worst = (got - want).abs().max().item() if got.shape == want.shape else float("nan")
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (
        f"the block differs from x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) by up to {worst:.2e}: "
        f"GPT-2 normalises each sublayer's input (pre-norm) and adds its output to x"
    )


def test_block_feeds_ln_1_to_attention_and_ln_2_to_the_mlp(step):
    """Watch the block run: attn must read exactly what ln_1 returned, mlp exactly what ln_2 returned."""
    block = make_block(step)
    seen = {}

    def output_of(name):
        return lambda module, args, out: seen.setdefault(name, []).append(out.detach())

    def input_of(name):
        return lambda module, args: seen.setdefault(name, []).append(args[0].detach())

    handles = [
        block.ln_1.register_forward_hook(output_of("ln_1")),
        block.ln_2.register_forward_hook(output_of("ln_2")),
        block.attn.register_forward_pre_hook(input_of("attn")),
        block.mlp.register_forward_pre_hook(input_of("mlp")),
    ]
    try:
        block(inputs(B, T, C))
    finally:
        for handle in handles:
            handle.remove()
    for name in ("ln_1", "attn", "ln_2", "mlp"):
        count = len(seen.get(name, []))
        assert count == 1, f"self.{name} ran {count} times in one forward pass, expected once"
    assert torch.equal(seen["attn"][0], seen["ln_1"][0]), (
        "attention does not read ln_1's output: pre-norm means self.attn(self.ln_1(x), cache)"
    )
    assert torch.equal(seen["mlp"][0], seen["ln_2"][0]), (
        "the MLP does not read ln_2's output: pre-norm means self.mlp(self.ln_2(x))"
    )


class RecordingCache:
    """A stand-in for step 10's cache: it records that attention handed it the keys and values."""

    def __init__(self):
        self.calls = 0

    def update(self, k, v):
        self.calls += 1
        return k, v  # nothing cached before: the keys and values pass through unchanged


def test_block_passes_the_cache_on_to_attention(step):
    block = make_block(step)
    x = inputs(B, T, C)
    cache = RecordingCache()
    y = block(x, cache)
    assert cache.calls == 1, (
        f"the cache given to the block reached attention {cache.calls} times, expected once: "
        f"pass it on, self.attn(self.ln_1(x), cache)"
    )
    assert torch.allclose(y, block(x), atol=1e-6), "an empty cache should not change the block's output"


def test_gradients_reach_every_block_parameter(step):
    torch.manual_seed(0)
    block = step.Block(config(step)).train()
    x = inputs(B, T, C).requires_grad_(True)
    (block(x) * inputs(B, T, C, seed=5)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), "no finite gradient reached the block's input"
    for name, p in block.named_parameters():
        assert p.grad is not None, f"{name} received no gradient: is it used in forward?"
        assert torch.isfinite(p.grad).all(), f"{name}'s gradient has nan or inf"
        assert p.grad.abs().sum() > 0, f"{name}'s gradient is zero: is it used in forward?"
