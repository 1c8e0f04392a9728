"""Checks for step 6: GELU and the position-wise feed-forward network (MLP).

The MLP checks use distinct sizes (B=2, T=5, n_embd=12, d_ff=20) so that a swapped axis cannot pass by
accident, and d_ff is not 4 * n_embd (48), so a hard-coded width is caught.
"""

import math

import pytest
import torch
import torch.nn.functional as F

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
    return "gelu does not follow 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"


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
    hint = ": is the hidden width hard-coded as 4 * n_embd? Use config.d_ff" if 4 * C in fc + proj else ""
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
        "in training mode with dropout=0.5 the output did not change: apply self.dropout to the output of c_proj"
    )
    dropped = noisy == 0
    assert dropped.any(), (
        "in training mode no output was zeroed, yet the output changed: is dropout inside the MLP? "
        "GPT-2 applies it after c_proj, to the MLP's output"
    )
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
