"""Checks for step 7: LayerNorm and the pre-norm transformer block.

Distinct sizes throughout (B=2, T=5, n_embd=12, n_head=3, head size 4, d_ff=20, block_size=8), so that a
swapped axis cannot pass by accident. The block's LayerNorms get random weights and biases, so that ln_1 and
ln_2 are told apart and a LayerNorm that ignores its weight is caught.

Two oracles: PyTorch's nn.LayerNorm for LayerNorm, and for the block its own parts put together here,
x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)), with the learner's own ln_1, attn, ln_2 and mlp. A message
names a mistake only when the check has confirmed it: `layernorm_mistakes` and `block_mistakes` compute what
the usual wrong versions give, from the same weights and parts, and a cause is named when the output equals
exactly one of them. Otherwise the message says plainly what differs, with numbers.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.gradcheck import GradcheckError  # torch.autograd.gradcheck itself is the function

from _meta_device import on_meta

B, T, C, NH, D_FF, BLOCK = 2, 5, 12, 3, 20, 8

# The causes a LayerNorm message may name, each only once the check has seen that very mistake's output.
LN_UNBIASED = "the variance divides by n - 1 (unbiased): LayerNorm uses the biased variance, x.var(-1, unbiased=False)"
LN_NO_EPS = "eps is missing: divide by sqrt(var + eps), so that a constant vector does not divide by zero"
LN_EPS_OUTSIDE = "eps is added outside the square root: divide by sqrt(var + eps)"
LN_EPS_FIXED = "eps is fixed at 1e-5 instead of self.eps: a LayerNorm made with eps=0.1 must use 0.1"
LN_NO_AFFINE = "the weight and bias are not applied: multiply by self.weight, then add self.bias"
LN_NO_SHIFT = "the bias is not added after scaling by the weight"
LN_TIME_AXIS = "mean and variance are taken over axis 1, not over each vector's last axis (dim=-1)"
LN_ALL_AXES = "mean and variance are taken over the whole tensor at once, not over each vector (dim=-1)"
LN_NO_KEEPDIM = "the mean and variance lose their axis (keepdim=True is missing), so they broadcast the wrong way"
LN_CANCELS = ("the variance is computed as mean(x**2) - mean**2, which loses its digits when x is large: "
              "take the mean of (x - mean)**2, or x.var(-1, unbiased=False)")
LN_IN_PLACE = "LayerNorm subtracts the mean from its input in place (x -= ...): write x - mean, a new tensor"
LN_DETACHED = "the mean or the variance is detached from the graph, so the gradient misses its part"
LN_BIAS_NONE = "with bias=False, self.bias is None: add it only when it is not None"

# The causes a block message may name.
POST_NORM = "the block normalises after adding (post-norm): GPT-2 normalises the sublayer's input (pre-norm)"
ONE_LN = "the MLP reads ln_1's output too: ln_1 feeds attn and ln_2 feeds mlp"
SWAPPED = "ln_1 and ln_2 are swapped: ln_1 feeds attn, ln_2 feeds mlp"
PARALLEL = "the MLP reads the block's input, not x after attention's output was added"
MLP_FIRST = "the MLP runs before attention: attention's update comes first, then the MLP's"
NO_RESIDUAL_ATTN = "attention's output replaces x: there is no residual connection around attn"
NO_RESIDUAL_MLP = "the MLP's output replaces x: there is no residual connection around the mlp"
NO_MLP = "the MLP is never applied: add self.mlp(self.ln_2(x)) to x"
NO_LN_1 = "attention reads x itself, not ln_1(x)"
NO_LN_2 = "the MLP reads x itself, not ln_2(x)"
NORMED_STREAM_1 = ("x is replaced by ln_1(x) before attention's output is added: the residual stream carries x "
                   "itself, x = x + self.attn(self.ln_1(x), cache)")
NORMED_STREAM_2 = ("x is replaced by ln_2(x) before the MLP's output is added: the residual stream carries x "
                   "itself, x = x + self.mlp(self.ln_2(x))")
BLOCK_IN_PLACE = "the block adds into its input x in place (x += ...): write x = x + ..., a new tensor"
CACHE_LOST = "the cache given to the block never reaches attention: hand it on, self.attn(self.ln_1(x), cache)"
LN_BIAS_IGNORED = "the block's LayerNorms ignore config.bias: LayerNorm(config.n_embd, bias=config.bias)"


def inputs(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def config(step, dropout=0.0, **overrides):
    values = dict(block_size=BLOCK, vocab_size=11, n_embd=C, n_head=NH, d_ff=D_FF, dropout=dropout)
    values.update(overrides)
    return step.GPTConfig(**values)


def make_block(step, seed=0, **overrides):
    """A block in eval mode with random LayerNorm weights and biases (they start at 1 and 0)."""
    torch.manual_seed(seed)
    block = step.Block(config(step, **overrides)).eval()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for ln in (block.ln_1, block.ln_2):
            ln.weight.copy_(1 + 0.5 * torch.randn(ln.weight.shape, generator=g))
            if ln.bias is not None:
                ln.bias.copy_(0.3 * torch.randn(ln.bias.shape, generator=g))
    return block


def make_layernorm(step, n=C, bias=True, seed=0, eps=1e-5):
    """The learner's LayerNorm and PyTorch's nn.LayerNorm with the same random weight (and bias)."""
    ours = step.LayerNorm(n, bias=bias, eps=eps)
    theirs = nn.LayerNorm(n, eps=eps, bias=bias)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.weight.copy_(1 + 0.5 * torch.randn(n, generator=g))
        theirs.weight.copy_(ours.weight)
        if bias:
            ours.bias.copy_(torch.randn(n, generator=g))
            theirs.bias.copy_(ours.bias)
    return ours, theirs


def same(a, b, atol=1e-5, rtol=1e-5):
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.to(b.dtype), b, atol=atol, rtol=rtol, equal_nan=True))


def differs(got, want) -> str:
    if isinstance(got, torch.Tensor) and got.shape == want.shape:
        return f"by up to {(got.double() - want.double()).abs().max().item():.3g}"
    shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    return f"in shape: {shape}, not {tuple(want.shape)}"


def cause_of(got, found, atol=1e-5, rtol=1e-5):
    """'<the one known mistake whose output equals got>; ' ('' when none does, or more than one, or got is right)."""
    hits = [name for name, want in found.items() if same(got, want, atol, rtol)]
    return f"{hits[0]}; " if len(hits) == 1 and hits[0] is not None else ""


# LayerNorm

def layernorm_mistakes(x, weight, bias, eps):
    """LayerNorm of x with this weight, bias and eps, right (under None) and by each usual mistake."""
    shift = bias if bias is not None else 0

    def norm(mean, var, eps=eps, outside=False):
        return (x - mean) / (torch.sqrt(var) + eps if outside else torch.sqrt(var + eps))

    with torch.no_grad():
        mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
        found = {
            None: F.layer_norm(x, weight.shape, weight, bias, eps),
            LN_UNBIASED: norm(mean, x.var(-1, keepdim=True, unbiased=True)) * weight + shift,
            LN_NO_EPS: norm(mean, var, eps=0.0) * weight + shift,
            LN_EPS_OUTSIDE: norm(mean, var, outside=True) * weight + shift,
            LN_NO_AFFINE: norm(mean, var),
            LN_NO_SHIFT: norm(mean, var) * weight,
            LN_ALL_AXES: (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * weight + shift,
            LN_CANCELS: norm(mean, (x * x).mean(-1, keepdim=True) - mean * mean) * weight + shift,
        }
        if eps != 1e-5:
            found[LN_EPS_FIXED] = norm(mean, var, eps=1e-5) * weight + shift
        if x.dim() >= 3:
            m1, v1 = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
            found[LN_TIME_AXIS] = (x - m1) / torch.sqrt(v1 + eps) * weight + shift
        if x.dim() >= 2 and x.shape[-1] == x.shape[-2]:  # only a square input broadcasts without keepdim
            m, v = x.mean(-1), x.var(-1, unbiased=False)
            found[LN_NO_KEEPDIM] = (x - m) / torch.sqrt(v + eps) * weight + shift
    return found


def normalise(ln, x):
    """ln(x); a broadcasting error is traced to a missing keepdim when a square input shows that very mistake."""
    try:
        return ln(x)
    except RuntimeError as error:
        if "must match the size" not in str(error):
            raise
        square = (inputs(C, C, seed=40) * 2 + 1).to(ln.weight.dtype)
        try:
            got = ln(square)
        except RuntimeError:
            raise error from None
        found = layernorm_mistakes(square, ln.weight, ln.bias, ln.eps)
        if cause_of(got, found) == f"{LN_NO_KEEPDIM}; ":
            raise AssertionError(f"{LN_NO_KEEPDIM}; on a ({', '.join(map(str, x.shape))}) input: "
                                 f"{str(error).splitlines()[0]}") from None
        raise


def check_layernorm(ln, x, what, atol=1e-5, rtol=1e-5):
    got = normalise(ln, x)
    found = layernorm_mistakes(x, ln.weight, ln.bias, ln.eps)
    assert same(got, found[None], atol, rtol), (
        f"{cause_of(got, found, atol, rtol)}LayerNorm {what} differs from nn.LayerNorm with the same weight, bias "
        f"and eps {differs(got, found[None])}"
    )
    return got


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
    x = torch.tensor([[1.0, 3.0]])
    got = normalise(ln, x)
    want = torch.tensor([[-1.99999, 1.499995]])
    found = layernorm_mistakes(x, ln.weight, ln.bias, ln.eps)
    found.pop(LN_ALL_AXES)  # one row: the whole tensor is that row
    assert same(got, want, atol=2e-6), (
        f"{cause_of(got, found, atol=2e-6)}LayerNorm([1, 3]) with weight [2, 1] and bias [0, 0.5] should be "
        f"[-1.99999, 1.499995], got {got.tolist() if isinstance(got, torch.Tensor) else got!r}"
    )


@pytest.mark.parametrize("bias", [True, False], ids=["with-bias", "without-bias"])
def test_layernorm_equals_pytorch_layernorm(step, bias):
    """Random weight and bias, eps 1e-5; rows on very different scales (0.003 to 30) and offsets, so that the
    eps and the variance's divisor both show."""
    ours, theirs = make_layernorm(step, bias=bias)
    scale = torch.tensor([0.003, 0.01, 0.1, 1.0, 30.0]).view(1, 5, 1)
    x = inputs(B, 5, C) * scale + 2.0 * inputs(B, 5, 1, seed=2)
    try:
        got = normalise(ours, x)
    except TypeError as error:
        if not bias and "NoneType" in str(error):
            raise AssertionError(f"{LN_BIAS_NONE} ({error})") from None
        raise
    assert same(got, theirs(x), atol=1e-4, rtol=1e-4), (
        f"{cause_of(got, layernorm_mistakes(x, ours.weight, ours.bias, ours.eps), 1e-4, 1e-4)}LayerNorm differs "
        f"from nn.LayerNorm (same weight{' and bias' if bias else ''}, eps 1e-5) {differs(got, theirs(x))}"
    )


def test_layernorm_uses_its_own_eps(step):
    """LayerNorm(C, eps=0.1) on vectors of variance about 0.01: eps 0.1 and 1e-5 give very different outputs."""
    ours, theirs = make_layernorm(step, eps=0.1)
    x = inputs(B, T, C, seed=3) * 0.1
    got = check_layernorm(ours, x, "made with eps=0.1")
    assert same(got, theirs(x)), f"LayerNorm made with eps=0.1 differs from nn.LayerNorm(eps=0.1) {differs(got, theirs(x))}"


@pytest.mark.parametrize("shape", [(4, C), (B, T, C), (3, 2, 2, C), (C, C)], ids=["2d", "3d", "4d", "square"])
def test_layernorm_normalises_over_the_last_axis(step, shape):
    """With weight 1 and bias 0, every vector along the last axis comes out with mean 0 and variance ~1."""
    ln = step.LayerNorm(C)
    x = inputs(*shape) * 3 + 1
    y = check_layernorm(ln, x, f"of a {len(shape)}-d input {shape}")
    mean, var = y.mean(-1), y.var(-1, unbiased=False)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5) and torch.allclose(var, torch.ones_like(var),
                                                                                      atol=1e-3), (
        f"the output vectors should have mean 0 and variance 1 over the last axis; their means reach "
        f"{mean.abs().max().item():.3g} and their variances run from {var.min().item():.3f} to {var.max().item():.3f}"
    )


def test_layernorm_of_a_constant_vector_is_its_bias(step):
    """x = [5, 5, ..., 5]: mean 5, var 0 -> (x - 5) / sqrt(0 + eps) = 0 -> 0 * weight + bias = bias."""
    ln, _ = make_layernorm(step)
    x = torch.full((1, C), 5.0)
    y = normalise(ln, x)
    found = layernorm_mistakes(x, ln.weight, ln.bias, ln.eps)
    assert same(y, ln.bias.detach().view(1, C)), (
        f"{cause_of(y, {None: found[None], LN_NO_EPS: found[LN_NO_EPS]})}LayerNorm of a constant vector should be "
        f"exactly its bias (the normalised part is 0); it differs {differs(y, ln.bias.detach().view(1, C))}"
    )


def test_layernorm_of_large_values_keeps_its_digits(step):
    """Vectors around 3000 with spread 1, in float32: x**2 is about 9e6, where float32 keeps only whole numbers,
    so mean(x**2) - mean**2 loses the variance; the mean of (x - mean)**2 keeps it."""
    ln, _ = make_layernorm(step)
    x = inputs(B, T, C, seed=4) + 3000.0
    got = normalise(ln, x)
    want = F.layer_norm(x.double(), (C,), ln.weight.double(), ln.bias.double(), 1e-5)
    assert isinstance(got, torch.Tensor) and torch.isfinite(got).all(), (
        f"{cause_of(got, layernorm_mistakes(x, ln.weight, ln.bias, ln.eps), 1e-3, 1e-3)}LayerNorm of vectors "
        f"around 3000 gave nan or inf"
    )
    assert same(got, want, atol=1e-3, rtol=1e-3), (
        f"{cause_of(got, layernorm_mistakes(x, ln.weight, ln.bias, ln.eps), 1e-3, 1e-3)}LayerNorm of vectors around "
        f"3000 (float32) differs from the float64 answer {differs(got, want)}"
    )


def test_layernorm_keeps_float64_and_leaves_its_input_alone(step):
    ln, _ = make_layernorm(step)
    ln = ln.double()
    x = inputs(B, T, C, seed=5).double() * 2 + 1
    x0 = x.clone()
    got = normalise(ln, x)
    if not torch.equal(x, x0):
        centred = x0 - x0.mean(-1, keepdim=True)
        lead = f"{LN_IN_PLACE}; " if torch.allclose(x, centred, atol=1e-12) else ""
        raise AssertionError(f"{lead}LayerNorm changed its input x, by up to {(x - x0).abs().max().item():.3g}")
    assert got.dtype == torch.float64, f"LayerNorm (made .double()) of a float64 x gave {got.dtype}: keep the dtype"
    check_layernorm(ln, x, "in float64", atol=1e-10, rtol=1e-10)


def test_layernorm_gradients_are_right(step):
    """float64, x (2, 3, 5): the gradient of the input, weight and bias agrees with autograd through
    F.layer_norm, and with finite differences (gradcheck)."""
    ln, _ = make_layernorm(step, n=5)
    ln = ln.double()
    x = inputs(2, 3, 5, seed=6).double().requires_grad_()
    w = inputs(2, 3, 5, seed=7).double()
    frozen = [name for name, p in ln.named_parameters() if not p.requires_grad]
    assert not frozen, f"these LayerNorm parameters do not learn (requires_grad is False): {frozen}"
    (normalise(ln, x) * w).sum().backward()
    got = x.grad

    def grad_of(detach_mean=False, detach_var=False):
        z = x.detach().clone().requires_grad_()
        mean = z.mean(-1, keepdim=True)
        var = z.var(-1, keepdim=True, unbiased=False)
        mean = mean.detach() if detach_mean else mean
        var = var.detach() if detach_var else var
        (((z - mean) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias) * w).sum().backward()
        return z.grad

    want = grad_of()
    wrong = [grad_of(True, False), grad_of(False, True), grad_of(True, True)]
    lead = f"{LN_DETACHED}; " if got is not None and any(same(got, g, 1e-9) for g in wrong) else ""
    assert got is not None and same(got, want, 1e-9), (
        f"{lead}the gradient of LayerNorm's input differs from autograd through F.layer_norm "
        + (differs(got, want) if got is not None else "(no gradient reached x)")
    )
    try:
        torch.autograd.gradcheck(lambda z, a, b: torch.func.functional_call(ln, {"weight": a, "bias": b}, (z,)),
                                 (x.detach().requires_grad_(), ln.weight.detach().clone().requires_grad_(),
                                  ln.bias.detach().clone().requires_grad_()), eps=1e-6, atol=1e-6)
    except GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"LayerNorm's gradients disagree with finite differences (float64): {first}") from None


# the block

def block_mistakes(block, x):
    """The block's output assembled from its own parts, right (under None) and by each usual wrong assembly."""
    ln_1, attn, ln_2, mlp = block.ln_1, block.attn, block.ln_2, block.mlp
    with torch.no_grad():
        x1 = x + attn(ln_1(x))
        u = ln_1(x)
        post = ln_1(x + attn(x))
        return {
            None: x1 + mlp(ln_2(x1)),
            POST_NORM: ln_2(post + mlp(post)),
            ONE_LN: x1 + mlp(ln_1(x1)),
            SWAPPED: (lambda z: z + mlp(ln_1(z)))(x + attn(ln_2(x))),
            PARALLEL: x1 + mlp(ln_2(x)),
            MLP_FIRST: (lambda z: z + attn(ln_1(z)))(x + mlp(ln_2(x))),
            NO_RESIDUAL_ATTN: (lambda z: z + mlp(ln_2(z)))(attn(ln_1(x))),
            NO_RESIDUAL_MLP: mlp(ln_2(x1)),
            NO_MLP: x1,
            NO_LN_1: (lambda z: z + mlp(ln_2(z)))(x + attn(x)),
            NO_LN_2: x1 + mlp(x1),
            NORMED_STREAM_1: (lambda z: z + mlp(ln_2(z)))(u + attn(u)),
            NORMED_STREAM_2: (lambda z: z + mlp(z))(ln_2(x1)),
        }


def parts_of(block):
    try:
        return block.ln_1, block.attn, block.ln_2, block.mlp
    except AttributeError as error:
        raise AssertionError(f"the block should have ln_1, attn, ln_2 and mlp, as GPT-2's: {error}") from None


def check_block(block, x, what, atol=1e-5, rtol=1e-5):
    """block(x) compared with its own parts assembled; returns the output."""
    parts_of(block)
    x0 = x.clone()
    with torch.no_grad():
        got = block(x)
    if not torch.equal(x, x0):
        lead = (f"{BLOCK_IN_PLACE}; " if same(x, got, 1e-6) else
                f"{LN_IN_PLACE}; " if same(x, x0 - x0.mean(-1, keepdim=True), 1e-6) else "")
        raise AssertionError(f"{lead}the block changed its input x ({what}), by up to "
                             f"{(x - x0).abs().max().item():.3g}")
    found = block_mistakes(block, x)
    assert same(got, found[None], atol, rtol), (
        f"{cause_of(got, found, atol, rtol)}the block ({what}) differs from x + attn(ln_1(x)), then + mlp(ln_2(.)), "
        f"assembled from its own ln_1, attn, ln_2 and mlp, {differs(got, found[None])}"
    )
    return got


@pytest.mark.parametrize("t", [1, T, BLOCK])
def test_block_keeps_the_shape(step, t):
    block = make_block(step)
    with torch.no_grad():
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


@pytest.mark.parametrize("bias", [True, False])
def test_block_follows_config_bias(step, bias):
    """bias=False: no bias anywhere in the block (both LayerNorms, c_attn, c_proj, c_fc); bias=True: all of them."""
    block = make_block(step, bias=bias)
    with_bias = sorted(name for name, _ in block.named_parameters() if name.endswith(".bias"))
    lns = [name for name in with_bias if name.startswith("ln_")]
    if bias:
        want = ["attn.c_attn.bias", "attn.c_proj.bias", "ln_1.bias", "ln_2.bias", "mlp.c_fc.bias", "mlp.c_proj.bias"]
        assert with_bias == want, f"with bias=True the block's biases should be {want}, got {with_bias}"
    else:
        assert not lns, f"{LN_BIAS_IGNORED}; with bias=False the block still has {lns}"
        assert not with_bias, f"with bias=False the block should have no bias at all, it has {with_bias}"
    check_block(block, inputs(B, T, C, seed=8) * 2, f"bias={bias}")


def test_block_is_causal(step):
    """Change the input at position 3: outputs at positions 0, 1, 2 must not move; position 3 must."""
    block = make_block(step)
    x = inputs(B, T, C)
    x2 = x.clone()
    x2[:, 3] = inputs(B, C, seed=9)
    with torch.no_grad():  # on copies: this check is about the outputs, not about changing the input
        y, y2 = block(x.clone()), block(x2.clone())
    moved = (y2 - y).abs().amax(dim=(0, 2))  # (T,)
    assert moved[:3].max() < 1e-6, (
        f"changing the input at position 3 changed the outputs before it (by {moved[:3].tolist()}): "
        f"a position must not see the future"
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
    with torch.no_grad():
        y = block(x)
    assert same(y, x, 1e-6), (
        f"{cause_of(y, block_mistakes(block, x))}with both sublayers adding zeros (their c_proj zeroed) the block "
        f"should return its input unchanged; it differs {differs(y, x)}"
    )


def test_block_is_pre_norm_as_in_gpt2(step):
    """The oracle, from the block's own parts: x1 = x + attn(ln_1(x)), then y = x1 + mlp(ln_2(x1))."""
    block = make_block(step)
    x = inputs(B, T, C) * 2
    check_block(block, x, "on random x")


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
        with torch.no_grad():
            block(inputs(B, T, C))
    finally:
        for handle in handles:
            handle.remove()
    for name in ("ln_1", "attn", "ln_2", "mlp"):
        count = len(seen.get(name, []))
        assert count == 1, f"self.{name} ran {count} times in one forward pass, expected once"
    assert torch.equal(seen["attn"][0], seen["ln_1"][0]), (
        "attention does not read what ln_1 returned: pre-norm means self.attn(self.ln_1(x), cache)"
    )
    assert torch.equal(seen["mlp"][0], seen["ln_2"][0]), (
        "the MLP does not read what ln_2 returned: pre-norm means self.mlp(self.ln_2(x))"
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
    with torch.no_grad():
        y = block(x.clone(), cache)
    assert cache.calls != 0, CACHE_LOST
    assert cache.calls == 1, f"the cache given to the block was updated {cache.calls} times in one call, expected once"
    want = block_mistakes(block, x)[None]
    assert same(y, want, 1e-6), (
        f"{cause_of(y, block_mistakes(block, x), 1e-6)}with an empty cache the block's output differs from its own "
        f"parts assembled {differs(y, want)}"
    )


@pytest.mark.parametrize("b, t", [(1, 4), (B, 1), (1, 1)], ids=["batch 1", "T=1", "batch 1 and T=1"])
def test_batch_1_and_t_1_match_the_oracle(step, b, t):
    check_block(make_block(step, seed=1), inputs(b, t, C, seed=10), f"batch {b}, T={t}")


def test_float64_non_contiguous_and_large_inputs(step):
    """A float64 block on float64 x gives float64; the same numbers laid out non-contiguously give the same
    output; inputs in the thousands give finite outputs equal to the block's own parts assembled."""
    block = make_block(step, seed=2).double()
    x = inputs(B, T, C, seed=11).double()
    with torch.no_grad():
        y = block(x)
    assert y.dtype == torch.float64, f"a float64 block on float64 x gave {y.dtype}: keep the dtype"
    check_block(block, x, "in float64", atol=1e-10, rtol=1e-10)
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # the same numbers, not contiguous
    assert not xt.is_contiguous()
    check_block(block, xt, "on a non-contiguous x", atol=1e-10, rtol=1e-10)
    big = inputs(B, T, C, seed=12) * 1000
    out = check_block(make_block(step, seed=2), big, "on x in the thousands", atol=1e-2, rtol=1e-4)
    assert torch.isfinite(out).all(), "the block's output has nan or inf for x in the thousands"


def test_dropout_follows_the_mode_and_the_seed(step):
    """dropout=0.3. In eval: the block equals its own parts assembled (nothing dropped). In training: it differs
    from eval, and under the same torch.manual_seed it equals its own parts assembled in the same order
    (attention's draws, then the MLP's), so every path's dropout is the sublayers' own."""
    block = make_block(step, seed=3, dropout=0.3)
    x = inputs(B, BLOCK, C, seed=13)
    clean = check_block(block, x, "in eval mode with dropout=0.3")
    block.train()
    ln_1, attn, ln_2, mlp = parts_of(block)
    with torch.no_grad():
        torch.manual_seed(14)
        noisy = block(x)
        torch.manual_seed(14)
        x1 = x + attn(ln_1(x))
        want = x1 + mlp(ln_2(x1))
    assert block.training, "the call switched the block to eval mode"
    assert not same(noisy, clean, 1e-6), "in training mode with dropout=0.3 the block's output equals the eval output"
    assert same(noisy, want), (
        f"in training mode, under the same seed, the block differs from x + attn(ln_1(x)), then + mlp(ln_2(.)), "
        f"run in that order, {differs(noisy, want)}"
    )


def test_a_call_changes_neither_its_input_nor_its_mode_nor_the_random_stream(step):
    block = make_block(step, seed=4)
    x = inputs(B, T, C, seed=15)
    rng = torch.get_rng_state()
    first = check_block(block, x, "in eval mode")
    assert not block.training, "the call switched the block to training mode"
    assert torch.equal(torch.get_rng_state(), rng), "in eval mode the call drew random numbers"
    with torch.no_grad():
        assert torch.equal(block(x), first), "two calls on the same x gave different outputs"


def test_gradients_reach_every_block_parameter(step):
    torch.manual_seed(0)
    block = step.Block(config(step)).train()
    frozen = [name for name, p in block.named_parameters() if not p.requires_grad]
    assert not frozen, f"these parameters do not learn (requires_grad is False): {frozen}"
    x = inputs(B, T, C).requires_grad_(True)
    (block(x) * inputs(B, T, C, seed=5)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), "no finite gradient reached the block's input"
    for name, p in block.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}'s gradient has nan or inf"
        assert p.grad.abs().sum() > 0, f"{name}'s gradient is zero"


def test_block_gradients_are_right_by_finite_differences(step):
    """gradcheck in float64 (fast mode) on a tiny block (n_embd 4, n_head 2, d_ff 6, T 3), with respect to the
    input and every parameter."""
    torch.manual_seed(5)
    block = step.Block(config(step, n_embd=4, n_head=2, d_ff=6)).double().eval()
    names = [name for name, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in block.parameters())
    x = torch.randn(1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(16), requires_grad=True)

    def go(x, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps)), (x,))

    try:
        torch.autograd.gradcheck(go, (x, *params), eps=1e-6, atol=1e-5, fast_mode=True)
    except GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"the block's gradients disagree with finite differences (float64): {first}") from None


@pytest.mark.parametrize("bias", [True, False])
def test_runs_on_the_device_of_its_input(step, bias):
    """On the meta device (shapes only): a tensor made without device= would sit on the CPU."""
    block = make_block(step, bias=bias).to("meta")
    x = torch.randn(B, T, C, device="meta")
    y = on_meta(lambda: block(x), f"the block (bias={bias})", fix=f"make it on x.device (bias={bias})")
    assert y.device.type == "meta" and tuple(y.shape) == (B, T, C), (
        f"on the meta device the output should be a meta tensor of shape {(B, T, C)}, got {y.device} {tuple(y.shape)}"
    )
