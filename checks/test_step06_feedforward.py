"""Checks for step 6: GELU and the position-wise feed-forward network (MLP).

The MLP checks use distinct sizes (B=2, T=5, n_embd=12, d_ff=20) so that a swapped axis cannot pass by
accident, and d_ff is not 4 * n_embd (48), so a hard-coded width is caught.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from _meta_device import on_meta

B, T, C, D_FF = 2, 5, 12, 20


def make(step, dropout=0.0, bias=True):
    torch.manual_seed(0)
    config = step.GPTConfig(block_size=8, vocab_size=11, n_embd=C, n_head=3, d_ff=D_FF, dropout=dropout, bias=bias)
    return step.MLP(config)


def inputs(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def gelu_tanh_by_hand(x: torch.Tensor) -> torch.Tensor:
    """The formula of GPT-2, in float64: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""
    x = x.double()
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def what_it_looks_like(got: torch.Tensor, x: torch.Tensor) -> str:
    """A learner's words for a wrong activation, found by comparing with the usual suspects."""
    suspects = [
        (F.relu(x), "this looks like ReLU: GELU lets small negative values through (gelu(-1) = -0.1588)"),
        (F.gelu(x), 'this is the exact (erf) GELU: GPT-2 uses the tanh approximation, F.gelu(x, approximate="tanh")'),
        (x, "the input comes back unchanged: apply the formula 0.5 * x * (1 + tanh(...))"),
    ]
    for value, words in suspects:
        if got.shape == value.shape and torch.allclose(got.double(), value.double(), atol=1e-6):
            return words
    cube = cube_coefficient(got, x)
    if cube is not None:
        return f"the cube coefficient is {cube:.6g}: GPT-2's formula has 0.044715 * x**3"
    return "gelu does not follow 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"


def cube_coefficient(got: torch.Tensor, x: torch.Tensor) -> float | None:
    """The c for which got = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + c * x**3))) at every point where that can be
    read back (|x| from 0.3 to 2, away from tanh's flat ends), when it is one c other than 0.044715; else None."""
    if got.shape != x.shape:
        return None
    x, got = x.double().flatten(), got.double().flatten()
    keep = (x.abs() > 0.3) & (x.abs() < 2)
    if keep.sum() < 2:
        return None
    x, got = x[keep], got[keep]
    inner = (2 * got / x - 1).clamp(-1 + 1e-12, 1 - 1e-12)
    cs = (torch.atanh(inner) / math.sqrt(2 / math.pi) - x) / x ** 3
    c = cs.median().item()
    consistent = (cs - c).abs().max().item() < 1e-3 * max(1.0, abs(c))
    return c if consistent and abs(c - 0.044715) > 1e-4 else None


def test_gelu_of_the_hand_examples(step):
    """gelu(1.0)  = 0.5 * 1 * (1 + tanh(0.79788 * (1 + 0.044715)))   = 0.5 * (1 + tanh(0.83356)) = 0.84119
    gelu(-1.0) = 0.5 * -1 * (1 + tanh(0.79788 * (-1 - 0.044715))) = -0.5 * (1 - 0.68238)      = -0.15881
    gelu(0.0)  = 0 (x = 0 makes the whole product 0)
    gelu(3.0)  = 0.5 * 3 * (1 + tanh(0.79788 * 4.207305))         = 1.5 * (1 + 0.99758)       = 2.99636
    (the exact erf GELU would give 0.84134, -0.15866, 0, 2.99595; ReLU 1, 0, 0, 3)
    """
    x = torch.tensor([1.0, -1.0, 0.0, 3.0])
    want = torch.tensor([0.84119, -0.15881, 0.0, 2.99636])
    got = step.gelu(x)
    assert isinstance(got, torch.Tensor) and got.shape == x.shape, (
        f"gelu should return a tensor of the input's shape {tuple(x.shape)}, got {got!r}"
    )
    assert torch.allclose(got, want, atol=1e-5), (
        f"{what_it_looks_like(got, x)}\n"
        f"gelu([1, -1, 0, 3]) should be {want.tolist()}, got {[round(v, 5) for v in got.tolist()]}"
    )


def test_gelu_equals_pytorch_tanh_gelu(step):
    """On 1201 points from -6 to 6 and on a (2, 3, 4) tensor: equal to F.gelu(x, approximate="tanh") within 1e-5."""
    for x in (torch.linspace(-6, 6, 1201), inputs(2, 3, 4) * 3):
        got = step.gelu(x)
        assert isinstance(got, torch.Tensor) and got.shape == x.shape, (
            f"gelu should work element by element and keep the shape {tuple(x.shape)}, got {got!r}"
        )
        want = F.gelu(x, approximate="tanh")
        worst = (got.double() - want.double()).abs().max().item()
        assert worst < 1e-5, (
            f"{what_it_looks_like(got, x)}\n"
            f"it differs from F.gelu(x, approximate='tanh') by up to {worst:.2e} (tolerance 1e-5)"
        )
        # The formula itself, in float64, as a second oracle.
        worst = (got.double() - gelu_tanh_by_hand(x)).abs().max().item()
        assert worst < 1e-5, f"gelu differs from the tanh formula by up to {worst:.2e}"


def test_gelu_lets_small_negative_values_through(step):
    """ReLU cuts every negative input to 0; GELU gives a small negative output, lowest near x = -0.75 (-0.17)."""
    x = torch.tensor([-0.5, -0.75, -1.0, -2.0])
    got = step.gelu(x)
    assert bool((got < 0).all()), (
        f"{what_it_looks_like(got, x)}\n"
        f"gelu({x.tolist()}) should all be small negative numbers, got {[round(v, 4) for v in got.tolist()]}"
    )
    assert bool((got > -0.2).all()), (
        f"gelu of a negative input should be small (between -0.17 and 0), got {[round(v, 4) for v in got.tolist()]}"
    )


def test_gelu_is_the_tanh_approximation_not_the_exact_erf_form(step):
    """Near x = +-2.7 the two forms differ most (4.7e-4); at +-1 by 1.5e-4: both well above the 1e-5 tolerance."""
    x = torch.tensor([-2.7, -1.0, 1.0, 2.7])
    got = step.gelu(x)
    tanh_form, erf_form = F.gelu(x, approximate="tanh"), F.gelu(x)
    assert (tanh_form - erf_form).abs().min() > 1e-4, "the check's points no longer separate the two forms"
    assert torch.allclose(got, tanh_form, atol=1e-5), (
        f"{what_it_looks_like(got, x)}\n"
        f"gelu({x.tolist()}) should be {[round(v, 5) for v in tanh_form.tolist()]} (tanh form), "
        f"got {[round(v, 5) for v in got.tolist()]}"
    )


def test_mlp_uses_the_gpt2_names_c_fc_and_c_proj(step):
    mlp = make(step)
    names = {name: tuple(p.shape) for name, p in mlp.named_parameters()}
    want = {"c_fc.weight": (D_FF, C), "c_fc.bias": (D_FF,), "c_proj.weight": (C, D_FF), "c_proj.bias": (C,)}
    missing = set(want) - set(names)
    assert not (missing and all(name.endswith(".bias") for name in missing)), (
        f"the Linear layers have no bias ({sorted(missing)} missing) though config.bias is True: pass bias=config.bias"
    )
    assert set(names) == set(want), (
        f"the MLP's parameters should be named as in GPT-2, c_fc (widen) and c_proj (project back); got {sorted(names)}"
    )
    no_bias = {name for name, _ in make(step, bias=False).named_parameters()}
    assert no_bias == {"c_fc.weight", "c_proj.weight"}, (
        f"with bias=False in the config the Linear layers should have no bias (bias=config.bias); got {sorted(no_bias)}"
    )


def test_mlp_hidden_width_comes_from_config_d_ff(step):
    mlp = make(step)
    fc, proj = tuple(mlp.c_fc.weight.shape), tuple(mlp.c_proj.weight.shape)
    hint = (": the hidden width is hard-coded as 4 * n_embd; use config.d_ff"
            if fc == (4 * C, C) or proj == (C, 4 * C) else "")
    assert fc == (D_FF, C), (
        f"c_fc.weight has shape {fc}, expected (d_ff, n_embd) = {(D_FF, C)}{hint}\n"
        f"c_fc widens each vector from n_embd = {C} to d_ff = {D_FF}: nn.Linear(config.n_embd, config.d_ff)"
    )
    assert proj == (C, D_FF), (
        f"c_proj.weight has shape {proj}, expected (n_embd, d_ff) = {(C, D_FF)}{hint}\n"
        f"c_proj brings each vector back from d_ff = {D_FF} to n_embd = {C}: nn.Linear(config.d_ff, config.n_embd)"
    )


@pytest.mark.parametrize("t", [1, T])
def test_mlp_keeps_the_shape_batch_time_embedding(step, t):
    mlp = make(step).eval()
    y = mlp(inputs(B, t, C))
    assert isinstance(y, torch.Tensor), f"forward should return a tensor, got {type(y).__name__}"
    assert tuple(y.shape) == (B, t, C), (
        f"output shape is {tuple(y.shape)}, expected (B, T, n_embd) = {(B, t, C)}: c_proj must map d_ff back to n_embd"
    )


def test_mlp_is_c_proj_of_gelu_of_c_fc(step):
    """The oracle, from the module's own weights: y = gelu(x @ W_fc^T + b_fc) @ W_proj^T + b_proj."""
    mlp = make(step).eval()
    x = inputs(B, T, C) * 2
    got = mlp(x)
    fc, proj = mlp.c_fc, mlp.c_proj
    h = fc(x)
    want = proj(F.gelu(h, approximate="tanh"))
    if got.shape == want.shape and not torch.allclose(got, want, atol=1e-5):
        suspects = [
            (proj(F.relu(h)), "this looks like ReLU between the layers: GELU lets small negative values through"),
            (proj(F.gelu(h)), 'this is the exact (erf) GELU: GPT-2 uses approximate="tanh"'),
            (proj(h), "there is no activation between c_fc and c_proj: apply gelu to c_fc(x)"),
        ]
        for wrong, words in suspects:
            assert not torch.allclose(got, wrong, atol=1e-5), words
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (
        "the MLP does not compute c_proj(gelu(c_fc(x))): widen with c_fc, apply gelu, project back with c_proj"
    )


def test_mlp_is_position_wise(step):
    """Change the input at one position only: the output changes there, and nowhere else (any batch row)."""
    mlp = make(step).eval()
    x = inputs(B, T, C)
    y = mlp(x)
    for t in (0, 2, T - 1):
        x2 = x.clone()
        x2[1, t] += inputs(C, seed=7 + t)
        y2 = mlp(x2)
        changed = (y2 - y).abs().amax(dim=-1) > 1e-6  # (B, T): which outputs moved
        expected = torch.zeros(B, T, dtype=torch.bool)
        expected[1, t] = True
        assert torch.equal(changed, expected), (
            f"changing the input at (batch 1, position {t}) changed the outputs at "
            f"{changed.nonzero().tolist()}, expected only [[1, {t}]]: the MLP must treat each position alone"
        )


def test_mlp_dropout_acts_on_the_output_in_training_only(step):
    """With p = 0.5 in training, every output is either 0 or twice its eval value (kept and scaled by 1/(1-p))."""
    mlp = make(step, dropout=0.5)
    x = inputs(B, T, C)
    mlp.eval()
    clean = mlp(x)
    again = mlp(x)
    assert torch.equal(clean, again), "in eval mode the MLP should be deterministic: dropout must switch off"
    want = make(step, dropout=0.0).eval()(x)
    assert torch.allclose(clean, want, atol=1e-6), (
        "in eval mode the MLP's output should not depend on config.dropout: use nn.Dropout, which eval() turns off"
    )
    mlp.train()
    torch.manual_seed(3)
    noisy = mlp(x)
    assert not torch.allclose(noisy, clean), (
        "in training mode with dropout=0.5 the output did not change: no dropout is applied; "
        "apply self.dropout to the output of c_proj"
    )
    dropped = noisy == 0
    if not dropped.any():
        with torch.no_grad():
            torch.manual_seed(3)
            hidden = mlp.c_proj(F.dropout(F.gelu(mlp.c_fc(x), approximate="tanh"), 0.5, training=True))
        inside = torch.allclose(noisy, hidden, atol=1e-5)
        raise AssertionError(
            ("dropout acts on the hidden layer, before c_proj: GPT-2 applies it after c_proj, to the MLP's output"
             if inside else "in training mode with dropout=0.5 no output was zeroed, yet the output changed") +
            f"; {(noisy - clean).abs().gt(1e-6).float().mean().item():.0%} of the outputs moved")
    assert 0.2 < dropped.float().mean().item() < 0.8, (
        f"in training mode with dropout=0.5 about half the outputs should be zeroed, got "
        f"{dropped.float().mean().item():.0%}: apply self.dropout to the output of c_proj"
    )
    assert torch.allclose(noisy[~dropped], 2 * clean[~dropped], atol=1e-5), (
        "dropout should act on the MLP's output (after c_proj): each output is either 0 or twice its eval value"
    )


def test_gradients_reach_every_mlp_parameter_and_the_input(step):
    mlp = make(step).train()
    x = inputs(B, T, C).requires_grad_(True)
    (mlp(x) * inputs(B, T, C, seed=5)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reached the input: is the output computed from x?"
    for name, p in mlp.named_parameters():
        assert p.grad is not None, f"{name} received no gradient: is it used in forward?"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}'s gradient is zero or not finite"


def oracle(mlp, x: torch.Tensor) -> torch.Tensor:
    """c_proj(gelu(c_fc(x))) from the module's own layers, in eval (no dropout)."""
    return mlp.c_proj(F.gelu(mlp.c_fc(x), approximate="tanh"))


def test_without_bias_the_mlp_is_still_c_proj_of_gelu_of_c_fc(step):
    """bias=False: the same computation with bias-free layers."""
    mlp = make(step, bias=False).eval()
    x = inputs(B, T, C, seed=2) * 2
    got, want = mlp(x), oracle(mlp, x)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (
        f"with bias=False the MLP should still be c_proj(gelu(c_fc(x))); it differs by up to "
        f"{(got - want).abs().max().item() if got.shape == want.shape else float('nan'):.2e}"
    )


@pytest.mark.parametrize("how", ["float64", "non-contiguous", "batch 1, T 1", "large values"])
def test_the_mlp_handles_any_well_formed_input(step, how):
    """float64 in gives float64 out; a transposed (non-contiguous) input, a single vector, values in the
    thousands: each gives c_proj(gelu(c_fc(x))), finite."""
    mlp = make(step).eval()
    x = {"float64": lambda: inputs(B, T, C, seed=3).double(),
         "non-contiguous": lambda: inputs(B, C, T, seed=3).transpose(1, 2),
         "batch 1, T 1": lambda: inputs(1, 1, C, seed=3),
         "large values": lambda: inputs(B, T, C, seed=3) * 1000}[how]()
    if how == "float64":
        mlp = mlp.double()
    got = mlp(x)
    want = oracle(mlp, x.contiguous())
    assert got.dtype == x.dtype, f"{how}: an input of {x.dtype} gave an output of {got.dtype}"
    assert got.shape == want.shape, f"{how}: the output has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    assert torch.isfinite(got).all(), f"{how}: the output holds NaN or infinite values"
    scale = want.abs().max().item() + 1
    assert torch.allclose(got, want, atol=1e-5 * scale, rtol=1e-5), (
        f"{how}: the MLP differs from c_proj(gelu(c_fc(x))) by up to {(got - want).abs().max().item():.2e}"
    )


def test_gelu_in_float64_and_at_large_magnitudes(step):
    """float64 stays float64 and keeps its precision; gelu(1000) = 1000 and gelu(-1000) = 0, finite."""
    x = torch.tensor([-1000.0, -30.0, -1.0, 0.0, 1e-3, 1.0, 30.0, 1000.0], dtype=torch.float64)
    got = step.gelu(x)
    assert got.dtype == torch.float64, f"gelu of a float64 tensor gave {got.dtype}: compute in the input's dtype"
    assert torch.isfinite(got).all(), f"gelu({x.tolist()}) gave {got.tolist()}: NaN or infinite"
    worst = (got - gelu_tanh_by_hand(x)).abs().max().item()
    assert worst < 1e-12, f"in float64 gelu differs from the tanh formula by up to {worst:.2e} (tolerance 1e-12)"


def test_gradients_are_right_by_finite_differences(step):
    """torch.autograd.gradcheck in float64: the analytic gradient of gelu and of the MLP, with respect to the
    input and every parameter, agrees with finite differences."""
    x = inputs(6, seed=4).double().mul(2).requires_grad_(True)
    assert torch.autograd.gradcheck(step.gelu, (x,), eps=1e-6, atol=1e-5, raise_exception=False), (
        "gelu's gradient disagrees with finite differences: is part of it computed outside autograd "
        "(.detach(), .item(), numpy)?")
    mlp = make(step).double().eval()
    x = inputs(1, 2, C, seed=5).double().requires_grad_(True)
    params = [p for _, p in mlp.named_parameters()]

    def through(x, *weights):
        return torch.func.functional_call(mlp, dict(zip([n for n, _ in mlp.named_parameters()], weights)), (x,))

    assert torch.autograd.gradcheck(through, (x, *params), eps=1e-6, atol=1e-5, raise_exception=False), (
        "the MLP's gradients disagree with finite differences")


def test_a_call_changes_neither_its_input_nor_its_mode_nor_the_random_stream(step):
    mlp = make(step, dropout=0.5).eval()
    x = inputs(B, T, C, seed=6)
    before, rng = x.clone(), torch.get_rng_state()
    first = mlp(x)
    assert torch.equal(x, before), "the MLP changed its input x: work on new tensors, not in place"
    assert not mlp.training, "the call switched the MLP to training mode"
    assert torch.equal(torch.get_rng_state(), rng), "in eval mode the call drew random numbers"
    assert torch.equal(mlp(x), first), "two calls on the same x gave different outputs"
    mlp.train()
    mlp(x)
    assert mlp.training, "the call switched the MLP to eval mode"
    y = torch.tensor([-1.0, 0.5, 2.0])
    kept = y.clone()
    step.gelu(y)
    assert torch.equal(y, kept), "gelu changed its input: return a new tensor, not x modified in place"


def test_dropout_in_training_follows_torch_manual_seed(step):
    mlp = make(step, dropout=0.5).train()
    x = inputs(B, T, C, seed=8)
    torch.manual_seed(21)
    first = mlp(x)
    torch.manual_seed(21)
    again = mlp(x)
    torch.manual_seed(22)
    other = mlp(x)
    clean = mlp.eval()(x)
    assert not torch.allclose(first, clean), (
        "in training mode with dropout=0.5 the output did not change: no dropout is applied; "
        "apply self.dropout to the output of c_proj")
    assert torch.equal(first, again), "under the same torch.manual_seed two training calls dropped different outputs"
    assert not torch.equal(first, other), (
        "two different seeds dropped the same outputs: draw with nn.Dropout from torch's random stream, "
        "and do not seed it yourself")


def test_runs_on_the_device_of_its_input(step):
    """On the meta device (shapes only): a tensor made without device= would sit on the CPU."""
    mlp = make(step).to("meta")
    x = torch.randn(B, T, C, device="meta")
    y = on_meta(lambda: mlp(x), "the MLP")
    assert y.device.type == "meta" and tuple(y.shape) == (B, T, C), (
        f"on the meta device the output should be a meta tensor of shape {(B, T, C)}, got {y.device} {tuple(y.shape)}"
    )
