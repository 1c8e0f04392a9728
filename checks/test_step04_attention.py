"""Checks for step 4: one head of causal self-attention.

Tensors have distinct sizes (B=2, nh=3, T=5, hs=4; n_embd=12) so that a swapped axis cannot pass by accident.

A message names a mistake only when the check has confirmed it: `mistaken_weights` computes what the usual
wrong ways give on the very same q and k, and a cause is named when the learner's weights equal exactly one of
them. Otherwise the message says plainly what differs, with numbers.
"""

import math

import pytest
import torch
import torch.nn.functional as F

B, NH, T, HS, C = 2, 3, 5, 4, 12

# The causes a message may name, each only once the check has seen that very mistake's output.
NO_MASK = "no causal mask: every query sees the future"
MASK_AFTER = "the mask is applied after the softmax: the weights left over do not sum to 1"
ZERO_FILL = "the future is filled with 0 instead of -inf"
NEVER_SCALED = "the scores are never scaled: divide q @ k^T by sqrt(hs)"
BY_HS = "the scores are divided by hs instead of sqrt(hs)"
BY_SQRT_TK = "the scores are divided by sqrt(Tk), the number of keys, instead of sqrt(hs), the head size"
TIMES_SQRT_HS = "the scores are multiplied by sqrt(hs) instead of divided by it"
OVER_QUERIES = "softmax over the queries (dim=-2) instead of over the keys (dim=-1)"
NOT_SHIFTED = "the triangle is not shifted: with Tq < Tk query i is position Tk - Tq + i, use .tril(diagonal=Tk - Tq)"
TOO_HIGH = "the mask is one diagonal too high: each query also sees the next position"
TOO_LOW = "the mask is one diagonal too low: a query cannot see its own position"
INVERTED = "the mask is inverted: the allowed scores are set to -inf and the future is kept"
RESHAPED = "k is reshaped instead of transposed: k.view/reshape(..., hs, Tk) mixes the numbers, use k.transpose(-2, -1)"


def qkv(tq=T, tk=T, hs=HS, seed=0, dtype=torch.float32, b=B, nh=NH):
    """Random q (B, nh, tq, hs), k and v (B, nh, tk, hs)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, nh, tq, hs, generator=g, dtype=dtype)
    k = torch.randn(b, nh, tk, hs, generator=g, dtype=dtype)
    v = torch.randn(b, nh, tk, hs, generator=g, dtype=dtype)
    return q, k, v


def attend(step, q, k, v, dropout_p=None):
    """causal_attention on copies of q, k, v -> (y, att), with a clear message when it does not return a pair.

    Copies, so that an implementation that edits its inputs in place does not change the check's own tensors
    (test_a_call_changes_neither_its_inputs_nor_the_random_stream names that mistake)."""
    args = (q.clone(), k.clone(), v.clone()) + (() if dropout_p is None else (dropout_p,))
    out = step.causal_attention(*args)
    assert isinstance(out, tuple) and len(out) == 2, (
        f"causal_attention should return a pair (y, att), got {type(out).__name__}: end with `return y, att`"
    )
    return out


def mistaken_weights(q, k):
    """The weights of the right way (under None) and of each usual wrong way (under its cause), on q and k."""
    tq, tk, hs = q.size(-2), k.size(-2), q.size(-1)
    dot = q @ k.transpose(-2, -1)
    ones = torch.ones(tq, tk, dtype=torch.bool)
    right = ones.tril(diagonal=tk - tq)

    def soft(scores, allowed=right, fill=float("-inf"), dim=-1):
        return F.softmax(scores.masked_fill(~allowed, fill), dim=dim)

    s = dot / math.sqrt(hs)
    return {
        None: soft(s),
        NO_MASK: F.softmax(s, dim=-1),
        MASK_AFTER: F.softmax(s, dim=-1).masked_fill(~right, 0.0),
        ZERO_FILL: soft(s, fill=0.0),
        NEVER_SCALED: soft(dot),
        BY_HS: soft(dot / hs),
        BY_SQRT_TK: soft(dot / math.sqrt(tk)),
        TIMES_SQRT_HS: soft(dot * math.sqrt(hs)),
        OVER_QUERIES: soft(s, dim=-2),
        NOT_SHIFTED: soft(s, allowed=ones.tril()),
        TOO_HIGH: soft(s, allowed=ones.tril(diagonal=tk - tq + 1)),
        TOO_LOW: soft(s, allowed=ones.tril(diagonal=tk - tq - 1)),
        INVERTED: soft(s, allowed=~right),
        RESHAPED: soft(q @ k.reshape(*k.shape[:-2], hs, tk) / math.sqrt(hs)),
    }


def same(a, b, atol=1e-5):
    return a.shape == b.shape and torch.allclose(a.to(b.dtype), b, atol=atol, equal_nan=True)


def cause_of(att, q, k):
    """The one known mistake whose weights equal att ("" when none does, or more than one, or att is right)."""
    found = [name for name, w in mistaken_weights(q, k).items() if same(att, w)]
    return found[0] if len(found) == 1 and found[0] is not None else ""


def cause_of_output(y, q, k, v):
    """The same, judged from the output y = att @ v."""
    found = [name for name, w in mistaken_weights(q, k).items() if same(y, w @ v)]
    return found[0] if len(found) == 1 and found[0] is not None else ""


def lead(cause):
    return f"{cause}; " if cause else ""


def rounded(x):
    return [[round(w, 4) for w in row] for row in x.tolist()]


def make_head(step, head_size=HS, seed=0, **overrides):
    torch.manual_seed(seed)
    config = step.GPTConfig(**{**dict(block_size=8, vocab_size=11, n_embd=C, n_head=NH, dropout=0.0), **overrides})
    head = step.Head(config, head_size)
    with torch.no_grad():  # biases larger than nn.Linear's default, so that a misplaced bias shows
        for p in head.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)
    return head


def layers_of(head):
    for name in ("query", "key", "value"):
        assert isinstance(getattr(head, name, None), torch.nn.Linear), (
            f"Head needs a linear layer named {name}: self.{name} = nn.Linear(config.n_embd, head_size, ...)"
        )
    return head.query, head.key, head.value


def test_causal_attention_returns_outputs_and_weights_of_the_right_shapes(step):
    y, att = attend(step, *qkv())
    want_y, want_att = (B, NH, T, HS), (B, NH, T, T)
    if tuple(y.shape) == want_att and tuple(att.shape) == want_y:
        raise AssertionError("y and att are returned in the order (att, y): end with `return y, att`")
    assert tuple(y.shape) == want_y, (
        f"y has shape {tuple(y.shape)}, expected (..., T, hs) = {want_y}: y = att @ v"
    )
    assert tuple(att.shape) == want_att, (
        f"att has shape {tuple(att.shape)}, expected (..., T, T) = {want_att}: "
        f"scores = q @ k.transpose(-2, -1), one row per query and one column per key"
    )


def test_the_hand_example_from_the_docstring(step):
    """hs = 4, q = [[1, 1, 1, 1], [1, 1, 1, 1]], k = [[0, 0, 0, 0], [1, 1, 1, 1]], v = [[1, 0, 0, 0], [0, 1, 0, 0]]:
    scores = q @ k^T / sqrt(4) = [[0, 4], [0, 4]] / 2 = [[0, 2], [0, 2]]
    masked                     -> [[0, -inf], [0, 2]]
    softmax over the keys      -> att = [[1, 0], [1 / (1 + e^2), e^2 / (1 + e^2)]] = [[1, 0], [0.1192, 0.8808]]
    y = att @ v                = [[1, 0, 0, 0], [0.1192, 0.8808, 0, 0]]
    With a cache, the last query alone (Tq = 1, Tk = 2) is position 1 and sees both keys: att = [[0.1192, 0.8808]].
    """
    q = torch.ones(2, 4)
    k = torch.tensor([[0., 0., 0., 0.], [1., 1., 1., 1.]])
    v = torch.tensor([[1., 0., 0., 0.], [0., 1., 0., 0.]])
    y, att = attend(step, q, k, v)
    p = math.exp(2) / (1 + math.exp(2))  # 0.8808
    want_att = torch.tensor([[1., 0.], [1 - p, p]])
    want_y = torch.tensor([[1., 0., 0., 0.], [1 - p, p, 0., 0.]])
    assert same(att, want_att, atol=1e-4), (
        f"{lead(cause_of(att, q, k))}att should be [[1, 0], [0.1192, 0.8808]] (see the docstring), got {rounded(att)}"
    )
    assert torch.allclose(y, want_y, atol=1e-4), f"y = att @ v should be {rounded(want_y)}, got {rounded(y)}"
    _, att = attend(step, q[1:], k, v)
    assert same(att, want_att[1:], atol=1e-4), (
        f"{lead(cause_of(att, q[1:], k))}the docstring's cached query (Tq = 1, Tk = 2) is position 1 and should "
        f"get att = [[0.1192, 0.8808]], got {rounded(att)}"
    )


def test_scores_are_divided_by_sqrt_of_the_head_size(step):
    """hs = 4, Tk = 2, the second query sees keys [0, 0, 0, 0] and [1, 1, 1, 1]: q . k = [0, 4].
    / sqrt(hs) = 2     -> [0, 2]    -> softmax [0.1192, 0.8808]   (right)
    / hs = 4           -> [0, 1]    -> softmax [0.2689, 0.7311]   (wrong)
    not divided        -> [0, 4]    -> softmax [0.0180, 0.9820]   (wrong)
    / sqrt(Tk) = 1.414 -> [0, 2.83] -> softmax [0.0558, 0.9442]   (wrong)
    * sqrt(hs) = 2     -> [0, 8]    -> softmax [0.0003, 0.9997]   (wrong)
    """
    q = torch.ones(2, 4)
    k = torch.tensor([[0., 0., 0., 0.], [1., 1., 1., 1.]])
    _, att = attend(step, q, k, torch.zeros(2, 4))
    got = [round(w, 4) for w in att[1].tolist()]
    right = [0.1192, 0.8808]
    for value, cause in ((0.7311, BY_HS), (0.9820, NEVER_SCALED), (0.9442, BY_SQRT_TK), (0.9997, TIMES_SQRT_HS)):
        if abs(got[1] - value) < 1e-4:
            raise AssertionError(f"{cause}: expected weights {right}, got {got}")
    assert abs(got[1] - 0.8808) < 1e-3, (
        f"with hs=4, q.k = [0, 4] should become [0, 2] (divided by sqrt(4)) and then weights {right}; got {got}"
    )


def test_later_positions_never_change_earlier_outputs(step):
    q, k, v = qkv()
    y, att = attend(step, q, k, v)
    g = torch.Generator().manual_seed(7)
    for t in range(1, T):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for x in (q2, k2, v2):  # change everything from position t on
            x[..., t:, :] = torch.randn(x[..., t:, :].shape, generator=g)
        y2, _ = attend(step, q2, k2, v2)
        for s in range(t):
            assert torch.allclose(y2[..., s, :], y[..., s, :], atol=1e-6), (
                f"{lead(cause_of(att, q, k))}the output at position {s} changed by up to "
                f"{(y2[..., s, :] - y[..., s, :]).abs().max().item():.3g} when the positions from {t} on changed"
            )


def test_rows_of_the_weights_sum_to_one_and_the_future_gets_exactly_zero(step):
    q, k, v = qkv()
    _, att = attend(step, q, k, v)
    rows = att.sum(dim=-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5), (
        f"{lead(cause_of(att, q, k))}rows of the attention weights should sum to 1; the first rows sum to "
        f"{[round(r, 4) for r in rows.flatten()[:T].tolist()]}"
    )
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    leak = att[..., future].abs().max().item()
    assert leak == 0.0, (
        f"{lead(cause_of(att, q, k))}the future gets weight {leak:.3g}, it must be exactly 0 "
        f"(the entries above the diagonal)"
    )


def test_the_mask_uses_minus_infinity_not_zero(step):
    """Both keys score -2 against the first query. Masked with -inf: att[0] = [1, 0].
    Masked with 0: softmax([-2, 0]) = [0.1192, 0.8808], the future would get most of the weight.
    """
    q = torch.ones(2, 1)
    k = torch.full((2, 1), -2.0)
    _, att = attend(step, q, k, torch.zeros(2, 1))
    got = att[0].tolist()
    if abs(got[1] - 0.8808) < 1e-3:
        raise AssertionError(
            f"{ZERO_FILL}: the first position gives weight {got[1]:.4f} to the future\n"
            f"Its allowed score is -2, which loses to a masked 0; fill the future with float('-inf')"
        )
    assert got == [1.0, 0.0], f"the first position may see only itself: att[0] should be [1, 0], got {got}"


@pytest.mark.parametrize("tq", [T, 3], ids=["Tq=Tk", "Tq<Tk"])
def test_the_weights_equal_the_masked_softmax_of_the_scaled_scores(step, tq):
    """The oracle: softmax(q @ k^T / sqrt(hs), with the future at -inf, over the keys), built here from q and k."""
    q, k, v = qkv(tq=tq, seed=3)
    _, att = attend(step, q, k, v)
    want = mistaken_weights(q, k)[None]
    assert att.shape == want.shape, f"att has shape {tuple(att.shape)}, expected {tuple(want.shape)}"
    if not same(att, want):
        gap = (att.to(want.dtype) - want).abs().nan_to_num(nan=float("inf")).amax(dim=-1)  # (B, nh, Tq)
        b, h, i = (int(n) for n in torch.nonzero(gap == gap.max())[0])
        raise AssertionError(
            f"{lead(cause_of(att, q, k))}with Tq={tq} and Tk={T}, the weights differ from "
            f"softmax(masked q @ k^T / sqrt(hs), dim=-1) by up to {gap.max().item():.3g}; query {i} "
            f"(batch {b}, head {h}): expected {rounded(want[b, h, i:i + 1])[0]}, got {rounded(att[b, h, i:i + 1])[0]}"
        )


def test_equals_pytorch_scaled_dot_product_attention(step):
    q, k, v = qkv(seed=4)
    y, _ = attend(step, q, k, v)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(y, want, atol=1e-5, rtol=1e-5), (
        f"{lead(cause_of_output(y, q, k, v))}y differs from F.scaled_dot_product_attention(q, k, v, is_causal=True) "
        f"by up to {(y - want).abs().max().item():.3g} (tolerance 1e-5)"
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
    want = mistaken_weights(q[..., -tq:, :], k)[None]
    assert same(att, want, atol=1e-6), (
        f"{lead(cause_of(att, q[..., -tq:, :], k))}with Tq={tq} queries and Tk={T} keys, query i is position "
        f"Tk - Tq + i and sees keys 0 .. Tk - Tq + i; the weights differ from that by up to "
        f"{(att - want).abs().max().item():.3g}"
    )
    fused = step.sdpa_causal_attention(q[..., -tq:, :], k, v)
    assert torch.allclose(y, fused, atol=1e-5), (
        f"with Tq={tq} queries and Tk={T} keys, y differs from sdpa_causal_attention by up to "
        f"{(y - fused).abs().max().item():.3g}"
    )


def test_a_single_position_attends_only_to_itself(step):
    q, k, v = qkv(tq=1, tk=1)
    y, att = attend(step, q, k, v)
    assert torch.equal(att, torch.ones(B, NH, 1, 1)), (
        f"{lead(cause_of(att, q, k))}with T=1 the only weight must be 1 (a position sees itself), "
        f"got {att.flatten()[:3].tolist()}"
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
    if not (torch.isfinite(y).all() and torch.isfinite(att).all()):
        small = qkv(seed=6)
        _, att_small = attend(step, *small)
        overflow = same(att_small, mistaken_weights(*small[:2])[None])  # right at ordinary sizes: only exp fails
        raise AssertionError(
            ("exp overflows for large scores: " if overflow else "") +
            f"inf or NaN in the output for large scores ({how}), although ordinary scores "
            f"{'give the right weights' if overflow else 'give wrong weights as well'}\n"
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
    y, _ = attend(step, q, k, v)
    w = torch.randn(y.shape, generator=g, dtype=torch.float64)  # random weights: y.sum() can hide a gradient
    grads = torch.autograd.grad((y * w).sum(), (q, k, v), allow_unused=True) if y.requires_grad else (None,) * 3
    reached = [g is not None and g.abs().sum().item() > 0 for g in grads]
    if reached == [False, False, True]:
        raise AssertionError("no gradient reaches q and k, only v: the weights att are cut from the graph "
                             "(.detach(), .data or torch.no_grad() before att @ v)")
    assert any(reached), (
        f"no gradient reaches q, k or v: y.requires_grad is {y.requires_grad}; build y from torch ops on q, k, v"
    )
    try:
        torch.autograd.gradcheck(lambda q, k, v: attend(step, q, k, v)[0], (q, k, v), eps=1e-6, atol=1e-5)
    except torch.autograd.gradcheck.GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"the gradients of causal_attention disagree with finite differences (float64 "
                             f"gradcheck, tolerance 1e-5): {first}") from None


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_zeroes_weights_and_scales_the_rest(step, p):
    """With dropout_p = p each weight becomes 0 (with probability p) or w / (1 - p). v is a random invertible
    (Tk, Tk) matrix per head, so the weights actually used are y @ v^-1, whatever att is returned."""
    q, k, _ = qkv(hs=T, seed=17, dtype=torch.float64, b=4, nh=6)
    v = torch.randn(4, 6, T, T, generator=torch.Generator().manual_seed(18), dtype=torch.float64)
    torch.manual_seed(19)
    y, _ = attend(step, q, k, v, dropout_p=p)
    w = mistaken_weights(q, k)[None]
    used = y @ torch.linalg.inv(v)  # the weights y was made with
    allowed = w > 1e-3
    zero = used.abs() < 1e-8
    scaled = (used - w / (1 - p)).abs() < 1e-6
    share = zero[allowed].double().mean().item()
    y0, _ = attend(step, q, k, v, dropout_p=0.0)
    wrong = "" if torch.allclose(y0, w @ v, atol=1e-6) else "the weights are wrong even with dropout_p=0 (see the other checks); "
    if torch.allclose(used, w, atol=1e-6):
        raise AssertionError(f"dropout_p is ignored: with dropout_p={p} no weight was dropped\n"
                             f"if dropout_p > 0.0: att = F.dropout(att, p=dropout_p), before y = att @ v")
    if ((used.abs() < 1e-8) | ((used - w / p).abs() < 1e-6)).all() and abs(share - (1 - p)) < 0.15 and p != 0.5:
        raise AssertionError(f"dropout_p used as the keep probability: {share:.0%} of the weights were dropped "
                             f"and the rest scaled by 1/{p:g}; F.dropout's p is the chance of dropping")
    y_clean = w @ v
    y_zero = y.abs() < 1e-8
    if y_zero.any() and torch.allclose(y[~y_zero], y_clean[~y_zero] / (1 - p), atol=1e-6):
        raise AssertionError(f"dropout on y instead of att: {y_zero.double().mean().item():.0%} of the outputs are "
                             f"exactly 0 and the rest are y / (1 - {p:g}); drop the weights att, then y = att @ v")
    assert (zero | scaled | ~allowed).all(), (
        f"{wrong}with dropout_p={p} each weight w should become 0 or w / (1 - {p:g}); "
        f"{(~(zero | scaled) & allowed).sum().item()} of {allowed.sum().item()} weights are neither"
    )
    assert abs(share - p) < 0.12, (
        f"with dropout_p={p} about {p:.0%} of the weights should be dropped, {share:.0%} were"
    )
    torch.manual_seed(19)
    again, _ = attend(step, q, k, v, dropout_p=p)
    assert torch.equal(again, y), "the same torch.manual_seed should drop the same weights: use F.dropout"


def test_a_call_changes_neither_its_inputs_nor_the_random_stream(step):
    q, k, v = qkv(seed=20)
    before = [x.clone() for x in (q, k, v)]
    rng = torch.get_rng_state()
    y1, _ = step.causal_attention(q, k, v)
    for name, x, x0 in zip("qkv", (q, k, v), before):
        if not torch.equal(x, x0):
            scaled = torch.allclose(x, x0 / math.sqrt(HS), atol=1e-6)
            raise AssertionError(
                f"causal_attention changes the caller's {name}: after the call it "
                f"{'is divided by sqrt(hs)' if scaled else 'differs by up to %.3g' % (x - x0).abs().max().item()}; "
                f"compute new tensors (q / ..., masked_fill) instead of editing the inputs in place"
            )
    assert torch.equal(torch.get_rng_state(), rng), (
        "with dropout_p = 0 causal_attention drew random numbers: draw only `if dropout_p > 0.0`"
    )
    y2, _ = step.causal_attention(q, k, v)
    assert torch.equal(y1, y2), "two calls on the same q, k, v gave different outputs"


def test_float64_and_non_contiguous_inputs_work(step):
    """float64 in -> float64 out; q, k, v cut from a larger tensor by .transpose (as step 5 does) still work."""
    q, k, v = qkv(seed=21, dtype=torch.float64)
    y, att = attend(step, q, k, v)
    assert y.dtype == torch.float64 and att.dtype == torch.float64, (
        f"float64 q, k, v gave y {y.dtype} and att {att.dtype}: keep the inputs' dtype (no torch.float32 anywhere)"
    )
    want = mistaken_weights(q, k)[None]
    assert same(att, want, atol=1e-10), (
        f"{lead(cause_of(att, q, k))}in float64 the weights differ from the oracle by up to "
        f"{(att - want).abs().max().item():.3g}"
    )
    qt, kt, vt = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))  # same values, not contiguous
    try:
        y2, _ = step.causal_attention(qt, kt, vt)
    except RuntimeError as error:
        raise AssertionError(f"causal_attention fails on non-contiguous q, k, v (made by .transpose): "
                             f"{str(error).splitlines()[0]}") from None
    assert torch.allclose(y2, y, atol=1e-10), (
        f"non-contiguous q, k, v with the same values gave a different y, by up to {(y2 - y).abs().max().item():.3g}"
    )


def test_runs_on_the_device_of_its_inputs(step):
    """On the meta device (shapes only, no numbers): a tensor made without device= would sit on the CPU."""
    q, k, v = (x.to("meta") for x in qkv(tq=3, seed=22))
    try:
        y, att = step.causal_attention(q, k, v)
    except NotImplementedError:
        raise
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        if "device" in first:
            raise AssertionError(f"a tensor made without device= is on the CPU while q is on another device "
                                 f"({first}): make it on q.device, e.g. torch.ones(..., device=q.device)") from None
        raise AssertionError(f"causal_attention fails for q, k, v on the meta device: {first}") from None
    assert y.device.type == "meta" and tuple(y.shape) == (B, NH, 3, HS), (
        f"on the meta device y should be a meta tensor of shape {(B, NH, 3, HS)}, got {y.device} {tuple(y.shape)}"
    )


def test_head_output_has_shape_batch_time_head_size(step):
    head = make_head(step, head_size=6)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(9))
    query, key, value = layers_of(head)
    for name, layer in zip(("query", "key", "value"), (query, key, value)):
        shape = tuple(layer.weight.shape)
        if shape == (C, 6):
            raise AssertionError(f"the {name} layer has its in and out sizes swapped: its weight is {shape}; "
                                 f"nn.Linear(config.n_embd, head_size) has weight (head_size, n_embd) = {(6, C)}")
        assert shape == (6, C), f"{name}.weight has shape {shape}, expected (head_size, n_embd) = {(6, C)}"
    y = head(x)
    if isinstance(y, tuple):
        raise AssertionError("Head.forward returns a tuple, not the tensor y: `y, _ = causal_attention(q, k, v)`, "
                             "then `return y`")
    assert isinstance(y, torch.Tensor), f"Head.forward should return the tensor y, got {type(y).__name__}"
    assert tuple(y.shape) == (B, T, 6), (
        f"Head(config, head_size=6) on x {(B, T, C)} should give {(B, T, 6)}, got {tuple(y.shape)}"
    )


def test_head_passes_its_own_query_key_and_value_to_causal_attention(step):
    """The oracle is assembled from the Head's own parts: causal_attention(query(x), key(x), value(x))."""
    head = make_head(step)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(10))
    query, key, value = layers_of(head)
    with torch.no_grad():
        y = head(x)
        q, k, v = query(x), key(x), value(x)
        right = step.causal_attention(q, k, v)[0]
        wrong = {
            "the query and key layers are swapped: q comes from self.key and k from self.query":
                step.causal_attention(k, q, v)[0],
            "v comes from self.key: v = self.value(x)": step.causal_attention(q, k, k)[0],
            "v comes from self.query: v = self.value(x)": step.causal_attention(q, k, q)[0],
        }
    if isinstance(y, tuple):
        raise AssertionError("Head.forward returns a tuple, not the tensor y")
    if not same(y, right):
        found = [cause for cause, w in wrong.items() if same(y, w)]
        raise AssertionError(
            (f"{found[0]}; " if len(found) == 1 else "") +
            "Head(x) differs from causal_attention(self.query(x), self.key(x), self.value(x))[0] by up to "
            + (f"{(y - right).abs().max().item():.3g}" if y.shape == right.shape else f"its shape {tuple(y.shape)}")
        )


@pytest.mark.parametrize("bias", [True, False])
def test_head_follows_config_bias(step, bias):
    head = make_head(step, bias=bias)
    layers = layers_of(head)
    for name, layer in zip(("query", "key", "value"), layers):
        has = layer.bias is not None
        assert has == bias, (
            f"Head ignores config.bias: with bias={bias} its {name} layer {'has' if has else 'has no'} bias; "
            f"nn.Linear(config.n_embd, head_size, bias=config.bias)"
        )
    x = torch.randn(1, 3, C, generator=torch.Generator().manual_seed(23))
    with torch.no_grad():
        y = head(x)
        want = step.causal_attention(*(layer(x) for layer in layers))[0]
    assert same(y, want), f"with bias={bias}, Head(x) differs from causal_attention of its own layers"


def test_head_is_causal_at_every_position(step):
    head = make_head(step)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(B, T, C, generator=g)
    with torch.no_grad():
        y = head(x)
        for t in range(1, T):
            x2 = x.clone()
            x2[:, t:] = torch.randn(B, T - t, C, generator=g)
            y2 = head(x2)
            if not torch.allclose(y2[:, :t], y[:, :t], atol=1e-6):
                q, k, v = qkv()
                y_a, _ = attend(step, q, k, v)
                v2 = v.clone()
                v2[..., 1:, :] += 1.0
                alone = "fails" if not torch.allclose(attend(step, q, k, v2)[0][..., 0, :], y_a[..., 0, :]) else "passes"
                raise AssertionError(
                    f"the output at positions 0 .. {t - 1} changed by up to "
                    f"{(y2[:, :t] - y[:, :t]).abs().max().item():.3g} when the input from position {t} on changed; "
                    f"causal_attention alone {alone} the same test"
                )


@pytest.mark.parametrize("length", [1, 64], ids=["T=1", "T=block_size"])
def test_head_gives_no_nan_at_the_extreme_lengths(step, length):
    torch.manual_seed(12)
    config = step.GPTConfig()  # block_size 64, n_embd 64
    head = step.Head(config, 16)
    with torch.no_grad():
        y = head(torch.randn(1, length, config.n_embd))
    assert tuple(y.shape) == (1, length, 16), f"expected shape {(1, length, 16)}, got {tuple(y.shape)}"
    assert torch.isfinite(y).all(), f"NaN or inf in the output for batch 1 and T={length}"


def test_gradients_reach_the_input_and_every_layer(step):
    head = make_head(step)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(13), requires_grad=True)
    w = torch.randn(B, T, HS, generator=torch.Generator().manual_seed(14))
    frozen = [name for name, p in head.named_parameters() if not p.requires_grad]
    assert not frozen, f"these parameters do not learn (requires_grad is False): {frozen}"
    (head(x) * w).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input x: is anything detached?"
    for name, layer in zip(("query", "key", "value"), layers_of(head)):
        grad = layer.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, (
            f"no gradient reached {name}.weight: is self.{name} used in forward, without .detach()?"
        )


def test_head_gradients_are_right_by_finite_differences(step):
    """gradcheck in float64 on a tiny Head (n_embd 3, head_size 2, T 3), for the input and every parameter."""
    torch.manual_seed(24)
    config = step.GPTConfig(block_size=4, vocab_size=5, n_embd=3, n_head=1, dropout=0.0)
    head = step.Head(config, 2).double()
    names = [name for name, _ in head.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in head.parameters())
    x = torch.randn(1, 3, 3, dtype=torch.float64, requires_grad=True)

    def run(x, *ps):
        return torch.func.functional_call(head, dict(zip(names, ps)), (x,))

    y = run(x, *params)
    assert y.dtype == torch.float64, f"Head.double() on float64 x gave {y.dtype}: keep the input's dtype"
    try:
        torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-5)
    except torch.autograd.gradcheck.GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"Head's gradients disagree with finite differences (float64 gradcheck): {first}") from None


def test_head_runs_on_the_device_of_its_input(step):
    head = make_head(step).to("meta")
    x = torch.randn(1, 4, C, device="meta")
    try:
        y = head(x)
    except NotImplementedError:
        raise
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        if "device" in first:
            raise AssertionError(f"a tensor made without device= is on the CPU while x is on another device "
                                 f"({first}): make it on the input's device") from None
        raise AssertionError(f"Head fails on the meta device: {first}") from None
    assert y.device.type == "meta", f"on the meta device Head should return a meta tensor, got {y.device}"
