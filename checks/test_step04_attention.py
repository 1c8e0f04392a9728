"""Checks for step 4: one head of causal self-attention.

Tensors have distinct sizes (B=2, nh=3, T=5, hs=4; n_embd=12) so that a swapped axis cannot pass by accident.
"""

import math

import pytest
import torch
import torch.nn.functional as F

B, NH, T, HS, C = 2, 3, 5, 4, 12


def qkv(tq=T, tk=T, hs=HS, seed=0, dtype=torch.float32):
    """Random q (B, nh, tq, hs), k and v (B, nh, tk, hs)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, NH, tq, hs, generator=g, dtype=dtype)
    k = torch.randn(B, NH, tk, hs, generator=g, dtype=dtype)
    v = torch.randn(B, NH, tk, hs, generator=g, dtype=dtype)
    return q, k, v


def attend(step, q, k, v):
    """causal_attention(q, k, v) -> (y, att), with a clear message when it does not return a pair."""
    out = step.causal_attention(q, k, v)
    assert isinstance(out, tuple) and len(out) == 2, (
        f"causal_attention should return a pair (y, att), got {type(out).__name__}: end with `return y, att`"
    )
    return out


def weights_by_hand(q, k, scale, fill=float("-inf"), dim=-1):
    """Attention weights the right way (the defaults) or one of the usual wrong ways, to name a mistake."""
    tq, tk = q.size(-2), k.size(-2)
    scores = q @ k.transpose(-2, -1) * scale
    future = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq).logical_not()
    return F.softmax(scores.masked_fill(future, fill), dim=dim)


def rounded(x):
    return [[round(w, 4) for w in row] for row in x.tolist()]


def make_head(step, head_size=HS, seed=0):
    torch.manual_seed(seed)
    config = step.GPTConfig(block_size=8, vocab_size=11, n_embd=C, n_head=NH, dropout=0.0)
    return step.Head(config, head_size)


def test_causal_attention_returns_outputs_and_weights_of_the_right_shapes(step):
    y, att = attend(step, *qkv())
    assert tuple(y.shape) == (B, NH, T, HS), (
        f"y has shape {tuple(y.shape)}, expected (..., T, hs) = {(B, NH, T, HS)}: y = att @ v"
    )
    assert tuple(att.shape) == (B, NH, T, T), (
        f"att has shape {tuple(att.shape)}, expected (..., T, T) = {(B, NH, T, T)}: "
        f"scores = q @ k.transpose(-2, -1), one row per query and one column per key"
    )


def test_the_hand_example_from_the_docstring(step):
    """hs = 4, q = [[1, 1, 1, 1], [1, 1, 1, 1]], k = [[0, 0, 0, 0], [1, 1, 1, 1]], v = [[1, 0, 0, 0], [0, 1, 0, 0]]:
    scores = q @ k^T / sqrt(4) = [[0, 4], [0, 4]] / 2 = [[0, 2], [0, 2]]
    masked                     -> [[0, -inf], [0, 2]]
    softmax over the keys      -> att = [[1, 0], [1 / (1 + e^2), e^2 / (1 + e^2)]] = [[1, 0], [0.1192, 0.8808]]
    y = att @ v                = [[1, 0, 0, 0], [0.1192, 0.8808, 0, 0]]
    """
    q = torch.ones(2, 4)
    k = torch.tensor([[0., 0., 0., 0.], [1., 1., 1., 1.]])
    v = torch.tensor([[1., 0., 0., 0.], [0., 1., 0., 0.]])
    y, att = attend(step, q, k, v)
    p = math.exp(2) / (1 + math.exp(2))  # 0.8808
    want_att = torch.tensor([[1., 0.], [1 - p, p]])
    want_y = torch.tensor([[1., 0., 0., 0.], [1 - p, p, 0., 0.]])
    assert torch.allclose(att, want_att, atol=1e-4), (
        f"att should be [[1, 0], [0.1192, 0.8808]] (see the docstring), got {rounded(att)}"
    )
    assert torch.allclose(y, want_y, atol=1e-4), (
        f"y = att @ v should be {rounded(want_y)}, got {rounded(y)}"
    )


def test_scores_are_divided_by_sqrt_of_the_head_size(step):
    """hs = 4, the second query sees keys [0, 0, 0, 0] and [1, 1, 1, 1]: q . k = [0, 4].
    / sqrt(hs) = 2 -> [0, 2] -> softmax [0.1192, 0.8808]   (right)
    / hs = 4       -> [0, 1] -> softmax [0.2689, 0.7311]   (wrong)
    not divided    -> [0, 4] -> softmax [0.0180, 0.9820]   (wrong)
    """
    q = torch.ones(2, 4)
    k = torch.tensor([[0., 0., 0., 0.], [1., 1., 1., 1.]])
    _, att = attend(step, q, k, torch.zeros(2, 4))
    got = [round(w, 4) for w in att[1].tolist()]
    right = [0.1192, 0.8808]
    if abs(got[1] - 0.7311) < 1e-3:
        raise AssertionError(f"scores are divided by hs, not by sqrt(hs): expected weights {right}, got {got}")
    if abs(got[1] - 0.9820) < 1e-3:
        raise AssertionError(f"scores are not divided by sqrt(head size): expected weights {right}, got {got}")
    assert abs(got[1] - 0.8808) < 1e-3, (
        f"with hs=4, q.k = [0, 4] should become [0, 2] (divided by sqrt(4)) and then weights {right}; got {got}"
    )


def test_later_positions_never_change_earlier_outputs(step):
    q, k, v = qkv()
    y, _ = attend(step, q, k, v)
    g = torch.Generator().manual_seed(7)
    for t in range(1, T):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for x in (q2, k2, v2):  # change everything from position t on
            x[..., t:, :] = torch.randn(x[..., t:, :].shape, generator=g)
        y2, _ = attend(step, q2, k2, v2)
        for s in range(t):
            assert torch.allclose(y2[..., s, :], y[..., s, :], atol=1e-6), (
                f"the output at position {s} changed when a later position ({t}) changed: is the mask applied "
                f"before the softmax?"
            )


def test_rows_of_the_weights_sum_to_one_and_the_future_gets_exactly_zero(step):
    q, k, v = qkv()
    _, att = attend(step, q, k, v)
    rows = att.sum(dim=-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-5):
        cols = att.sum(dim=-2)
        if torch.allclose(cols, torch.ones_like(cols), atol=1e-5):
            raise AssertionError("softmax over the wrong dimension: rows of the attention weights do not sum to 1 "
                                 "(the columns do): take the softmax over the keys, dim=-1")
        raise AssertionError(
            f"rows of the attention weights do not sum to 1: is the mask applied before the softmax?\n"
            f"The first row sums to {rows.flatten()[0].item():.4f}; the softmax must come last, over the keys (dim=-1)"
        )
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    leak = att[..., future].abs().max().item()
    assert leak == 0.0, (
        f"the future gets weight {leak:.3g} (it must be exactly 0): mask the scores above the diagonal with "
        f"float('-inf'), not 0, before the softmax"
    )


def test_the_mask_uses_minus_infinity_not_zero(step):
    """Both keys score -2 against the first query. Masked with -inf: att[0] = [1, 0].
    Masked with 0: softmax([-2, 0]) = [0.1192, 0.8808], the future would get most of the weight.
    """
    q = torch.ones(2, 1)
    k = torch.full((2, 1), -2.0)
    _, att = attend(step, q, k, torch.zeros(2, 1))
    got = att[0].tolist()
    assert abs(got[1] - 0.8808) > 1e-3, (
        f"masking with 0 instead of -inf: the first position gives weight {got[1]:.4f} to the future\n"
        f"Its allowed score is -2, which loses to a masked 0; fill the future with float('-inf')"
    )
    assert got == [1.0, 0.0], f"the first position may see only itself: att[0] should be [1, 0], got {got}"


def test_softmax_is_taken_over_the_keys(step):
    q, k, v = qkv(seed=3)
    _, att = attend(step, q, k, v)
    if torch.allclose(att, weights_by_hand(q, k, 1 / math.sqrt(HS), dim=-2), atol=1e-5):
        raise AssertionError("softmax over the wrong dimension: rows of the attention weights do not sum to 1 "
                             "(softmax ran over the queries, dim=-2); use dim=-1, the keys")
    want = weights_by_hand(q, k, 1 / math.sqrt(HS))
    assert torch.allclose(att, want, atol=1e-5), (
        f"the attention weights differ from softmax(masked q @ k^T / sqrt(hs), dim=-1) by up to "
        f"{(att - want).abs().max().item():.3g}"
    )


def test_equals_pytorch_scaled_dot_product_attention(step):
    q, k, v = qkv(seed=4)
    y, _ = attend(step, q, k, v)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(y, want, atol=1e-5, rtol=1e-5), (
        f"y differs from F.scaled_dot_product_attention(q, k, v, is_causal=True) by up to "
        f"{(y - want).abs().max().item():.3g} (tolerance 1e-5): check the scaling, the mask and the softmax"
    )


@pytest.mark.parametrize("tq", [1, 3], ids=["Tq=1", "Tq=3"])
def test_fewer_queries_than_keys_are_the_last_positions(step, tq):
    """With a cache (step 10), q holds only the last tq positions and k, v all T: query i is position T - tq + i."""
    q, k, v = qkv(seed=5)
    y_all, att_all = attend(step, q, k, v)
    y, att = attend(step, q[..., -tq:, :], k, v)
    assert tuple(y.shape) == (B, NH, tq, HS) and tuple(att.shape) == (B, NH, tq, T), (
        f"with Tq={tq} queries and Tk={T} keys, y should be {(B, NH, tq, HS)} and att {(B, NH, tq, T)}; "
        f"got {tuple(y.shape)} and {tuple(att.shape)}"
    )
    assert torch.allclose(att, att_all[..., -tq:, :], atol=1e-6), (
        f"with Tq={tq} queries and Tk={T} keys, query i is position Tk - Tq + i and sees keys 0 .. Tk - Tq + i: "
        f"shift the triangle, .tril(diagonal=Tk - Tq)"
    )
    fused = step.sdpa_causal_attention(q[..., -tq:, :], k, v)
    assert torch.allclose(y, fused, atol=1e-5), (
        f"with Tq={tq} queries and Tk={T} keys, y differs from sdpa_causal_attention by up to "
        f"{(y - fused).abs().max().item():.3g}: shift the triangle, .tril(diagonal=Tk - Tq)"
    )


def test_a_single_position_attends_only_to_itself(step):
    q, k, v = qkv(tq=1, tk=1)
    y, att = attend(step, q, k, v)
    assert torch.equal(att, torch.ones(B, NH, 1, 1)), (
        f"with T=1 the only weight must be 1 (a position sees itself), got {att.flatten()[:3].tolist()}"
    )
    assert torch.allclose(y, v, atol=1e-6), "with T=1 the output must be v itself: y = att @ v with att = [[1]]"


@pytest.mark.parametrize("how", ["q, k times 1000", "scores shifted by +100"])
def test_large_scores_give_finite_outputs(step, how):
    """Softmax must not overflow: exp(1000) is inf in float32, the max must be subtracted first (F.softmax does)."""
    q, k, v = qkv(seed=6)
    if how == "q, k times 1000":
        q, k = q * 1000, k * 1000
    else:  # the last dimension becomes 20 in q and 10 in k: it adds 20 * 10 / sqrt(4) = 100 to every score
        q = torch.cat([q[..., :3], torch.full_like(q[..., :1], 20.0)], dim=-1)
        k = torch.cat([k[..., :3], torch.full_like(k[..., :1], 10.0)], dim=-1)
    y, att = attend(step, q, k, v)
    assert torch.isfinite(y).all() and torch.isfinite(att).all(), (
        f"inf or NaN in the output for large scores ({how}): use F.softmax, not exp(scores) / sum\n"
        f"F.softmax subtracts each row's max before exp, so nothing overflows"
    )
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    assert torch.allclose(y.double(), want, atol=1e-4), (
        f"wrong output for large scores ({how}): differs from PyTorch's attention by "
        f"{(y.double() - want).abs().max().item():.3g}"
    )


def test_gradients_are_right_by_finite_differences(step):
    """torch.autograd.gradcheck in float64 on a tiny attention: autograd's gradients vs numeric ones."""
    g = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(1, 3, 2, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ok = torch.autograd.gradcheck(lambda q, k, v: attend(step, q, k, v)[0], (q, k, v),
                                  eps=1e-6, atol=1e-5, raise_exception=False)
    assert ok, (
        "the gradients of causal_attention disagree with finite differences (float64 gradcheck)\n"
        "Build y only from differentiable torch ops: no .detach(), no .item(), no in-place edits of q, k, v"
    )


def test_head_output_has_shape_batch_time_head_size(step):
    head = make_head(step, head_size=6)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(9))
    y = head(x)
    assert isinstance(y, torch.Tensor), f"Head.forward should return the tensor y, got {type(y).__name__}"
    assert tuple(y.shape) == (B, T, 6), (
        f"Head(config, head_size=6) on x {(B, T, C)} should give {(B, T, 6)}, got {tuple(y.shape)}"
    )


def test_head_equals_pytorch_attention_with_its_own_weights(step):
    head = make_head(step)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(10))
    for name in ("query", "key", "value"):
        assert isinstance(getattr(head, name, None), torch.nn.Linear), (
            f"Head needs a linear layer named {name}: self.{name} = nn.Linear(config.n_embd, head_size, ...)"
        )
        assert getattr(head, name).bias is not None, (
            f"Head's {name} layer has no bias although config.bias is True: pass bias=config.bias"
        )
    with torch.no_grad():
        y = head(x)
        want = F.scaled_dot_product_attention(head.query(x), head.key(x), head.value(x), is_causal=True)
    assert torch.allclose(y, want, atol=1e-5), (
        f"Head(x) differs from causal attention of query(x), key(x), value(x) by up to "
        f"{(y - want).abs().max().item():.3g}: q, k, v each come from their own layer"
    )


def test_head_is_causal_at_every_position(step):
    head = make_head(step)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(B, T, C, generator=g)
    y = head(x)
    for t in range(1, T):
        x2 = x.clone()
        x2[:, t:] = torch.randn(B, T - t, C, generator=g)
        y2 = head(x2)
        assert torch.allclose(y2[:, :t], y[:, :t], atol=1e-6), (
            f"the output at position 0 .. {t - 1} changed when the input at position {t} changed: is the mask "
            f"applied before the softmax?"
        )


@pytest.mark.parametrize("length", [1, 64], ids=["T=1", "T=block_size"])
def test_head_gives_no_nan_at_the_extreme_lengths(step, length):
    torch.manual_seed(12)
    config = step.GPTConfig()  # block_size 64, n_embd 64
    head = step.Head(config, 16)
    y = head(torch.randn(1, length, config.n_embd))
    assert tuple(y.shape) == (1, length, 16), f"expected shape {(1, length, 16)}, got {tuple(y.shape)}"
    assert torch.isfinite(y).all(), f"NaN or inf in the output for T={length}: does every row keep its diagonal?"


def test_gradients_reach_query_key_and_value(step):
    head = make_head(step)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(13))
    w = torch.randn(B, T, HS, generator=torch.Generator().manual_seed(14))
    (head(x) * w).sum().backward()
    for name in ("query", "key", "value"):
        layer = getattr(head, name, None)
        assert layer is not None, f"Head needs a linear layer named {name}"
        grad = layer.weight.grad
        assert grad is not None, f"no gradient reached {name}.weight: is self.{name} used in forward?"
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (
            f"the gradient of {name}.weight is zero or not finite: is self.{name} used in forward, without .detach()?"
        )
