"""Checks for step 8: the whole GPT, with tied weights, GPT-2's initialisation and the loss.

Most checks use a tiny model with distinct sizes (B=2, T=5, vocab_size=37, block_size=8, n_embd=12, n_head=3,
n_layer=2, d_ff=20), so that a swapped axis cannot pass by accident. The loss and initialisation checks use
bigger models, where the statistics they measure are stable.

The oracle is the model's own parts put together here: lm_head(ln_f(blocks(emb(idx)))). A message names a
mistake only when the check has confirmed it: `outputs_of_mistakes` assembles what the usual wrong assemblies
give from the model's own parts, `losses_of_mistakes` what the usual wrong losses give from its own logits,
and the initialisation checks watch every draw __init__ makes. Otherwise a message says plainly what differs,
with numbers.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from _meta_device import OffDevice

B, T, V, BLOCK, C, NH, L, D_FF = 2, 5, 37, 8, 12, 3, 2, 20

# The causes a message may name, each only once the check has seen that very mistake.
NO_LN_F = "the final LayerNorm ln_f is not applied: logits = self.lm_head(self.transformer.ln_f(x))"
LN_F_FIRST = "ln_f is applied to the embeddings, before the blocks: it belongs after the last block"
LN_F_EVERY_BLOCK = "ln_f is applied after every block: apply it once, after the last block"
BLOCKS_DISCARDED = "the blocks' outputs are thrown away: x = block(x, ...)"
LOGITS_SCALED = "the logits are divided by sqrt(n_embd): lm_head's output is the logits as it is"
EMB_SCALED = "the embeddings are multiplied by sqrt(n_embd): GPT-2 feeds them to the blocks as they are"
SOFTMAXED = "forward returns probabilities (a softmax of the logits): return lm_head's raw output"
LAST_ONLY = "lm_head is applied to the last position only: every position gets its logits"
LOSS_LAST = "the loss is taken at the last position only: average over all B * T positions"
LOSS_MIXED_AXES = "the logits are flattened with the vocabulary and time axes mixed up"
LOSS_OF_SOFTMAX = "the loss is computed from softmax(logits): F.cross_entropy takes the raw logits"
LOSS_SUMMED = "the loss is summed over the positions, not averaged"
MEAN_OVER_ALL = "the ignored positions still count in the mean"
NOT_IGNORED = "a target of -1 makes the loss fail: pass ignore_index=-1 to F.cross_entropy"
NOT_LOG_SPACE = "the loss is not computed in log space"
VIEW_TARGETS = "targets sliced from a bigger tensor are not contiguous: flatten them with .reshape, not .view"
NOT_TIED = "tie them with self.lm_head.weight = self.transformer.emb.wte.weight"
TIED_COPY = "lm_head.weight shares wte's numbers but is a second Parameter"
LM_HEAD_BIAS = "lm_head has a bias: GPT-2's output layer has none"
SHARED_BLOCK = "one Block object is repeated n_layer times"
LN_F_BIAS = "ln_f ignores config.bias"
NON_EMB_WTE = "num_params(non_embedding=True) leaves out the token table wte instead of the position table wpe"
NON_EMB_IGNORED = "num_params ignores non_embedding"
NO_APPLY = "self.apply(self._init_weights) is never called"
LINEAR_KEPT = "_init_weights leaves an nn.Linear's weight as PyTorch drew it"
LINEAR_BIAS_KEPT = "_init_weights leaves a Linear's bias as PyTorch drew it"
EMBEDDING_KEPT = "_init_weights leaves an nn.Embedding at PyTorch's N(0, 1)"
NOT_REDRAWN = "c_proj.weight is never re-drawn with std 0.02 / sqrt(2 * n_layer)"
BEFORE_APPLY = "the c_proj weights are re-drawn before self.apply(self._init_weights), which draws them again"
SQRT_N_LAYER = "c_proj.weight is drawn with std 0.02 / sqrt(n_layer), not 0.02 / sqrt(2 * n_layer)"
ONLY_ATTN = "only attn.c_proj.weight is re-drawn: mlp.c_proj.weight needs the smaller std too"
ONLY_MLP = "only mlp.c_proj.weight is re-drawn: attn.c_proj.weight needs the smaller std too"
BIAS_REDRAWN = "the c_proj biases are re-drawn along with the weights: only names ending in c_proj.weight"
START_IGNORED = "the embeddings are not told where the new tokens start"
CACHE_NOT_PASSED = "the blocks are not handed their layer of the cache"
SAME_LAYER = "every block gets the same layer of the cache"
LOGITS_FLOAT32 = "the logits are cast to float32"


def make(step, seed=0, **overrides):
    sizes = dict(block_size=BLOCK, vocab_size=V, n_embd=C, n_head=NH, n_layer=L, d_ff=D_FF, dropout=0.0)
    sizes.update(overrides)
    torch.manual_seed(seed)
    return step.GPT(step.GPTConfig(**sizes))


def scrambled(step, seed=0, **overrides):
    """make(), then every parameter re-drawn large (weights N(0, 0.3^2), LayerNorm weights 1 + N(0, 0.3^2)), so
    that the place of every part shows in the logits. The tie survives: the shared tensor is drawn in place."""
    model = make(step, seed, **overrides)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.copy_(1 + noise if "ln_" in name and name.endswith("weight") else noise)
    return model


def tokens(*shape, high=V, seed=1):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def parts_of(model):
    """emb, the blocks, ln_f and lm_head, the parts the oracle is built from."""
    try:
        t = model.transformer
        return t.emb, list(t.h), t.ln_f, model.lm_head
    except (AttributeError, KeyError, TypeError) as error:
        raise AssertionError(f"the model should have transformer.emb, transformer.h (the blocks), transformer.ln_f "
                             f"and lm_head, as GPT-2's: {error}") from None


def outputs_of_mistakes(model, idx, start=0):
    """The logits assembled from the model's own parts, right (under None) and by each usual wrong assembly."""
    emb, blocks, ln_f, lm_head = parts_of(model)

    def run_blocks(x, after=lambda x: x):
        for block in blocks:
            x = after(block(x))
        return x

    with torch.no_grad():
        e = emb(idx, start)
        h = run_blocks(e)
        right = lm_head(ln_f(h))
        return {
            None: right,
            NO_LN_F: lm_head(h),
            LN_F_FIRST: lm_head(run_blocks(ln_f(e))),
            LN_F_EVERY_BLOCK: lm_head(run_blocks(e, ln_f)),
            BLOCKS_DISCARDED: lm_head(ln_f(e)),
            LOGITS_SCALED: right / math.sqrt(e.shape[-1]),
            EMB_SCALED: lm_head(ln_f(run_blocks(e * math.sqrt(e.shape[-1])))),
            SOFTMAXED: F.softmax(right, dim=-1),
            LAST_ONLY: right[:, -1:],
        }


def losses_of_mistakes(logits, targets):
    """The loss of the model's own logits, right (under None) and by each usual wrong loss."""
    b, t, v = logits.shape
    flat, wanted = logits.detach().reshape(b * t, v), targets.reshape(b * t)
    found = {
        None: F.cross_entropy(flat, wanted, ignore_index=-1),
        LOSS_LAST: F.cross_entropy(logits.detach()[:, -1], targets[:, -1], ignore_index=-1),
        LOSS_MIXED_AXES: F.cross_entropy(logits.detach().transpose(1, 2).reshape(b * t, v), wanted, ignore_index=-1),
        LOSS_OF_SOFTMAX: F.cross_entropy(F.softmax(flat, dim=-1), wanted, ignore_index=-1),
        LOSS_SUMMED: F.cross_entropy(flat, wanted, ignore_index=-1, reduction="sum"),
    }
    if (wanted == -1).any():
        found[MEAN_OVER_ALL] = F.cross_entropy(flat, wanted, ignore_index=-1, reduction="sum") / (b * t)
    return found


def same(a, b, atol=1e-5):
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, atol=atol, rtol=1e-4)


def cause_of(got, found, what="the logits"):
    """'<the one known mistake whose output equals got>; ' ('' when none does, or more than one, or got is right).
    An output that is the right one times a constant is told as that factor."""
    hits = [name for name, want in found.items() if same(got, want)]
    if len(hits) == 1 and hits[0] is not None:
        return f"{hits[0]}; "
    right = found[None]
    if not hits and isinstance(got, torch.Tensor) and got.shape == right.shape and got.numel() > 1 \
            and right.abs().max() > 0:  # one number is always some multiple of another: only tensors tell a factor
        ratio = (got.double() * right.double()).sum() / (right.double() ** 2).sum()
        if abs(ratio - 1) > 1e-3 and same(got, (ratio * right.double()).to(right.dtype)):
            return f"{what} are {ratio.item():.4g} times the right ones, an extra scale; "
    return ""


def differs(got, want) -> str:
    if isinstance(got, torch.Tensor) and got.shape == want.shape:
        return f"by up to {(got.double() - want.double()).abs().max().item():.3g}"
    return f"in shape: {tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}, not {tuple(want.shape)}"


def forward(model, idx, targets=None, **kwargs):
    out = model(idx, targets, **kwargs)
    assert isinstance(out, tuple) and len(out) == 2, f"forward should return (logits, loss), got {type(out).__name__}"
    return out


def closed_form_count(V, block_size, C, n_layer, d_ff):
    """Embeddings V*C + block_size*C; per layer: two LayerNorms 2 * 2C, attention C*3C + 3C (c_attn) and
    C*C + C (c_proj), MLP C*d_ff + d_ff (c_fc) and d_ff*C + C (c_proj); final LayerNorm 2C; the tied lm_head
    adds nothing."""
    per_layer = 4 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * d_ff + d_ff) + (d_ff * C + C)
    return V * C + block_size * C + n_layer * per_layer + 2 * C


def std_of(tensors):
    return torch.cat([t.detach().flatten() for t in tensors]).std().item()


@pytest.mark.parametrize("t", [1, T, BLOCK])
def test_logits_have_shape_batch_time_vocab(step, t):
    model = make(step).eval()
    idx = tokens(B, t)
    logits, loss = forward(model, idx)
    if isinstance(logits, torch.Tensor) and tuple(logits.shape) == (B, 1, V) and t > 1:
        assert not same(logits, outputs_of_mistakes(model, idx)[LAST_ONLY]), LAST_ONLY
    assert isinstance(logits, torch.Tensor) and tuple(logits.shape) == (B, t, V), (
        f"logits have shape {tuple(getattr(logits, 'shape', ()))}, expected (B, T, vocab_size) = {(B, t, V)}: "
        f"every position gets one score per vocabulary token"
    )
    assert torch.isfinite(logits).all(), f"the logits have nan or inf at T = {t}"
    _, loss = forward(model, idx, tokens(B, t, seed=2))
    assert loss is not None and torch.isfinite(loss), f"the loss is {loss} at T = {t}, expected a finite number"


def test_forward_is_lm_head_of_ln_f_of_the_blocks_of_the_embeddings(step):
    """The oracle, from the model's own parts (every weight re-drawn large so that each part's place shows):
    x = emb(idx); x = block(x) for each block in order; logits = lm_head(ln_f(x))."""
    model = scrambled(step).eval()
    idx = tokens(B, T, seed=3)
    logits, _ = forward(model, idx)
    found = outputs_of_mistakes(model, idx)
    assert same(logits, found[None]), (
        f"{cause_of(logits, found)}the logits differ from lm_head(ln_f(blocks(emb(idx)))), assembled from the "
        f"model's own parts, {differs(logits, found[None])}"
    )


def test_loss_is_none_without_targets(step):
    _, loss = forward(make(step), tokens(B, T))
    assert loss is None, f"without targets the loss should be None, got {loss!r}"


def test_lm_head_is_tied_to_the_token_embedding(step):
    model = make(step)
    wte = model.transformer.emb.wte.weight
    head = model.lm_head.weight
    if head is not wte and head.shape == wte.shape and head.data_ptr() == wte.data_ptr():
        raise AssertionError(f"{TIED_COPY} (nn.Parameter(...) or .data makes one): each would train on its own; "
                             f"assign the very Parameter, self.lm_head.weight = self.transformer.emb.wte.weight")
    assert head is wte, f"lm_head.weight is a separate tensor from the token embedding: {NOT_TIED}"
    assert tuple(wte.shape) == (V, C), (
        f"the tied matrix should be (vocab_size, n_embd) = {(V, C)}, got {tuple(wte.shape)}"
    )


def test_lm_head_has_no_bias(step):
    model = make(step)
    assert model.lm_head.bias is None, f"{LM_HEAD_BIAS} (nn.Linear(..., bias=False))"


def gpt2_names(n_layer, bias=True):
    want = ["transformer.emb.wte.weight", "transformer.emb.wpe.weight", "transformer.ln_f.weight", "lm_head.weight"]
    parts = ["ln_1.weight", "attn.c_attn.weight", "attn.c_proj.weight", "ln_2.weight", "mlp.c_fc.weight",
             "mlp.c_proj.weight"]
    if bias:
        want.append("transformer.ln_f.bias")
        parts += ["ln_1.bias", "attn.c_attn.bias", "attn.c_proj.bias", "ln_2.bias", "mlp.c_fc.bias", "mlp.c_proj.bias"]
    return want + [f"transformer.h.{i}.{part}" for i in range(n_layer) for part in parts]


def test_parameters_have_the_gpt2_names(step):
    model = make(step)
    names = set(dict(model.named_parameters(remove_duplicate=False)))
    want = gpt2_names(L)
    missing = [name for name in want if name not in names]
    assert not missing, (
        f"parameters missing or named differently from GPT-2: {missing[:4]}{' ...' if len(missing) > 4 else ''}\n"
        f"self.transformer = nn.ModuleDict(dict(emb=..., h=nn.ModuleList([...]), ln_f=...)) and self.lm_head"
    )
    assert len(model.transformer.h) == L, (
        f"transformer.h holds {len(model.transformer.h)} blocks, expected n_layer = {L}"
    )
    extra = sorted(names - set(want))
    assert not extra, f"parameters GPT-2 does not have: {extra[:4]}"


def test_parameters_follow_config_bias(step):
    """With bias=False no Linear and no LayerNorm has a bias: only the weights are left."""
    model = make(step, bias=False)
    names = set(dict(model.named_parameters(remove_duplicate=False)))
    extra = sorted(names - set(gpt2_names(L, bias=False)))
    if "transformer.ln_f.bias" in extra:
        raise AssertionError(f"{LN_F_BIAS}: with bias=False it still has a bias; "
                             f"LayerNorm(config.n_embd, bias=config.bias)")
    assert not extra, f"with bias=False in the config these parameters should not exist: {extra[:4]}"
    idx = tokens(B, T)
    logits, _ = forward(model.eval(), idx)
    found = outputs_of_mistakes(model, idx)
    assert same(logits, found[None]), (
        f"{cause_of(logits, found)}with bias=False the logits differ from lm_head(ln_f(blocks(emb(idx)))), assembled "
        f"from the model's own parts, {differs(logits, found[None])}"
    )


def test_parameter_count_matches_the_closed_form(step):
    """V=37, block_size=8, C=12, n_layer=2, d_ff=20:
    embeddings 37*12 + 8*12 = 540; per layer 48 + (432 + 36) + (144 + 12) + (240 + 20) + (240 + 12) = 1184;
    final LayerNorm 24; total 540 + 2 * 1184 + 24 = 2932 (lm_head, tied, adds nothing).
    Without the position table (non_embedding=True): 2932 - 8*12 = 2836."""
    model = make(step)
    want = closed_form_count(V, BLOCK, C, L, D_FF)
    assert want == 2932, "the check's own formula is off"
    blocks = list(model.transformer.h)
    if len(blocks) > 1 and all(block is blocks[0] for block in blocks):
        raise AssertionError(f"{SHARED_BLOCK} (nn.ModuleList([Block(config)] * n_layer) repeats one): "
                             f"build a new one per layer, [Block(config) for _ in range(config.n_layer)]")
    got = sum(p.numel() for p in model.parameters())  # a shared tensor is yielded once
    extra = got - want
    words = {V * C: f"{V * C} = vocab_size * n_embd too many (a second matrix of vocab_size x n_embd)",
             V: f"{V} = vocab_size too many (a vector of vocab_size)",
             -2 * C: "2 * n_embd too few (one LayerNorm's weight and bias)"}
    assert got == want, (
        f"the model has {got} parameters, the closed form gives {want}: "
        + words.get(extra, f"{extra:+d} off; check each part's shape against the formula")
    )
    count = model.num_params()
    assert count == want, f"num_params() returns {count}, expected {want}"
    non_embedding = model.num_params(non_embedding=True)
    if non_embedding != want - BLOCK * C:
        cause = {want - V * C: f"{NON_EMB_WTE}; ", want: f"{NON_EMB_IGNORED}; "}.get(non_embedding, "")
        raise AssertionError(f"{cause}num_params(non_embedding=True) returns {non_embedding}, expected "
                             f"{want} - block_size * n_embd = {want - BLOCK * C} (all but the position table)")


def test_loss_at_initialisation_is_close_to_ln_vocab_size(step):
    """With GPT-2's small initial weights every logit is near 0, the prediction near uniform over the 512
    tokens, and the loss for random targets near -ln(1/512) = ln(512) = 6.238 (within 0.3)."""
    model = make(step, vocab_size=512, block_size=16, n_embd=32, n_head=4, d_ff=64)
    targets = tokens(4, 16, high=512, seed=2)
    logits, loss = forward(model, tokens(4, 16, high=512), targets)
    want = math.log(512)
    assert loss is not None, "with targets the loss should be a number, got None"
    if abs(loss.item() - want) >= 0.3:
        of_logits = F.cross_entropy(logits.detach().reshape(-1, logits.shape[-1]), targets.reshape(-1)).item()
        raise AssertionError(
            f"the loss at initialisation is {loss.item():.2f}, far from ln(512) = {want:.2f}: "
            + (f"the logits spread with std {logits.std().item():.3g}, far from near 0, and give a cross-entropy "
               f"of {of_logits:.2f}" if abs(of_logits - want) >= 0.3 else
               f"yet F.cross_entropy of its own logits gives {of_logits:.2f}, so the loss is what differs")
        )


def test_loss_equals_cross_entropy_of_the_logits(step):
    model = scrambled(step)
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    logits, loss = forward(model, idx, targets)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, (
        f"the loss should be a single number (a 0-d tensor), got {loss!r}"
    )
    found = losses_of_mistakes(logits, targets)
    assert same(loss, found[None], atol=1e-6), (
        f"{cause_of(loss, found, 'the loss')}the loss {loss.item():.6f} differs from F.cross_entropy of the logits over all "
        f"B * T positions ({found[None].item():.6f}), each row of (B * T, vocab_size) scored against its target"
    )


def test_targets_of_minus_one_are_left_out_of_the_loss(step):
    model = scrambled(step)
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    forward(model, idx, targets)  # without any -1: a failure here is no matter of ignore_index
    targets[0, :2] = -1
    targets[1, 4] = -1
    try:
        logits, loss = forward(model, idx, targets)
    except (IndexError, RuntimeError) as error:
        raise AssertionError(f"{NOT_IGNORED} ({error})") from None
    found = losses_of_mistakes(logits, targets)
    assert same(loss, found[None], atol=1e-6), (
        f"{cause_of(loss, found, 'the loss')}the loss {loss.item():.6f} should be the mean over the 7 positions whose target "
        f"is not -1 ({found[None].item():.6f})"
    )


def test_non_contiguous_inputs_and_targets_work(step):
    """idx = data[:, :-1] and targets = data[:, 1:], slices of one tensor, are not contiguous in memory."""
    model = scrambled(step)
    data = tokens(B, T + 1, seed=4)
    idx, targets = data[:, :-1], data[:, 1:]
    assert not targets.is_contiguous(), "the check's targets should not be contiguous"
    want_logits, want_loss = forward(model, idx.contiguous(), targets.contiguous())
    try:
        logits, loss = forward(model, idx, targets)
    except RuntimeError as error:
        if "view size is not compatible" in str(error):
            raise AssertionError(f"{VIEW_TARGETS} ({str(error).splitlines()[0][:80]})") from None
        raise
    assert same(logits, want_logits) and same(loss, want_loss), (
        "idx and targets sliced from one tensor (not contiguous) gave other logits or another loss than their "
        f"contiguous copies: the loss {loss.item():.6f}, expected {want_loss.item():.6f}"
    )


@pytest.mark.parametrize("b, t", [(1, T), (B, 1), (1, 1)], ids=["batch 1", "T=1", "batch 1, T=1"])
def test_batch_1_and_t_1_match_the_oracle(step, b, t):
    model = scrambled(step).eval()
    idx, targets = tokens(b, t, seed=5), tokens(b, t, seed=6)
    logits, loss = forward(model, idx, targets)
    found = outputs_of_mistakes(model, idx)
    assert same(logits, found[None]), (
        f"{cause_of(logits, found)}batch {b}, T={t}: the logits differ from lm_head(ln_f(blocks(emb(idx)))) "
        f"{differs(logits, found[None])}"
    )
    losses = losses_of_mistakes(logits, targets)
    assert same(loss, losses[None], atol=1e-6), (
        f"{cause_of(loss, losses, 'the loss')}batch {b}, T={t}: the loss {loss.item():.6f} differs from F.cross_entropy of the "
        f"logits ({losses[None].item():.6f})"
    )


class Draws(torch.overrides.TorchFunctionMode):
    """Notes every in-place draw (normal_, uniform_, zero_) with the storage it wrote and, for normal_, its std."""

    def __init__(self):
        super().__init__()
        self.draws = []  # (data_ptr, std or None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensor = args[0] if args else kwargs.get("tensor")  # nn.init.normal_ hands its tensor by keyword
        if name in ("normal_", "uniform_", "zero_", "zeros_", "fill_") and isinstance(tensor, torch.Tensor):
            std = (args[2] if len(args) > 2 else kwargs.get("std", 1.0)) if name == "normal_" else None
            self.draws.append((tensor.data_ptr(), std))
        return func(*args, **kwargs)


def test_init_weights_draws_linear_and_embedding_weights_with_std_0_02(step):
    """_init_weights on fresh layers: Linear(256, 256) weight std 0.02 and bias 0; Embedding(256, 64) std 0.02.
    PyTorch's own defaults would give std 0.036 (Linear) and 1.0 (Embedding)."""
    model = make(step)
    torch.manual_seed(1)
    linear, embedding = torch.nn.Linear(256, 256), torch.nn.Embedding(256, 64)
    before = {name: p.detach().clone() for name, p in
              (("linear", linear.weight), ("bias", linear.bias), ("embedding", embedding.weight))}
    model._init_weights(linear)
    model._init_weights(embedding)
    kept = {name: torch.equal(before[name], p) for name, p in
            (("linear", linear.weight), ("bias", linear.bias), ("embedding", embedding.weight))}
    for what, weight, cause in (("an nn.Linear", linear.weight, LINEAR_KEPT if kept["linear"] else ""),
                                ("an nn.Embedding", embedding.weight, EMBEDDING_KEPT if kept["embedding"] else "")):
        std, mean = weight.std().item(), weight.mean().item()
        assert abs(std - 0.02) < 0.002 and abs(mean) < 0.002, (
            f"{cause + '; ' if cause else ''}_init_weights left {what}'s weight with std {std:.4f} (mean "
            f"{mean:.4f}), expected std 0.02 around 0: nn.init.normal_(module.weight, mean=0.0, std=0.02)"
        )
    assert torch.all(linear.bias == 0), (
        f"{LINEAR_BIAS_KEPT + ': ' if kept['bias'] else ''}_init_weights should set a Linear's bias to zero, "
        f"nn.init.zeros_(module.bias); it is up to {linear.bias.abs().max().item():.3g}"
    )


def test_gpt2_initialisation_of_the_whole_model(step, monkeypatch):
    """A model big enough for stable statistics (n_embd=64, 4 layers): every Linear and Embedding weight
    has std 0.02 (within 10%), except c_proj, the last layer of each residual branch: 0.02 / sqrt(2 * 4) = 0.0071.
    Biases start at 0, LayerNorm weights at 1. Every draw __init__ makes is watched, to tell the order."""
    n_layer = 4
    calls = []
    own = step.GPT._init_weights
    monkeypatch.setattr(step.GPT, "_init_weights", lambda self, module: (calls.append(1), own(self, module))[1])
    watch = Draws()
    with watch:
        model = make(step, vocab_size=256, block_size=32, n_embd=64, n_head=4, n_layer=n_layer, d_ff=128)
    assert calls, f"{NO_APPLY} in __init__: the weights keep PyTorch's defaults"
    params = dict(model.named_parameters())
    scaled = 0.02 / math.sqrt(2 * n_layer)

    def group(suffix):
        return [p for n, p in params.items() if n.endswith(suffix)]

    for name, tensors in (("transformer.emb.wte.weight", group("emb.wte.weight")),
                          ("transformer.emb.wpe.weight", group("emb.wpe.weight")),
                          ("attn.c_attn.weight", group("attn.c_attn.weight")),
                          ("mlp.c_fc.weight", group("mlp.c_fc.weight"))):
        assert tensors, f"no parameter named ...{name}: see the GPT-2 names check"
        std = std_of(tensors)
        assert abs(std - 0.02) < 0.002, f"{name} starts with std {std:.4f}, expected 0.02"

    def stds_drawn(tensors):
        """The stds of the normal_ draws on these tensors' storage, in order, for the first of them."""
        return [std for ptr, std in watch.draws if ptr == tensors[0].data_ptr() and std is not None]

    groups = {"attn.c_proj.weight": group("attn.c_proj.weight"), "mlp.c_proj.weight": group("mlp.c_proj.weight")}
    right = {}
    for name, tensors in groups.items():
        assert tensors, f"no parameter named ...{name}: see the GPT-2 names check"
        right[name] = abs(std_of(tensors) - scaled) < 0.1 * scaled
    if right["attn.c_proj.weight"] != right["mlp.c_proj.weight"]:
        wrong = "mlp.c_proj.weight" if right["attn.c_proj.weight"] else "attn.c_proj.weight"
        if abs(std_of(groups[wrong]) - 0.02) < 0.002:
            raise AssertionError(ONLY_ATTN if right["attn.c_proj.weight"] else ONLY_MLP)
    for name, tensors in groups.items():
        std = std_of(tensors)
        if right[name]:
            continue
        drawn = stds_drawn(tensors)
        cause = ""
        if abs(std - 0.02) < 0.002:
            later = [s for i, s in enumerate(drawn) if abs(s - scaled) < 1e-9 and any(
                abs(t - 0.02) < 1e-9 for t in drawn[i + 1:])]
            if later:
                cause = BEFORE_APPLY
            elif not any(abs(s - scaled) < 1e-9 for s in drawn):
                cause = NOT_REDRAWN
        elif abs(std - 0.02 / math.sqrt(n_layer)) < 0.05 * 0.02 / math.sqrt(n_layer):
            cause = SQRT_N_LAYER
        raise AssertionError(f"{cause + '; ' if cause else ''}{name} starts with std {std:.4f}, expected "
                             f"0.02 / sqrt(2 * n_layer) = {scaled:.4f}")
    for name, p in params.items():
        if name.endswith(".bias") and ".ln_" not in name and "ln_f" not in name:
            if not torch.all(p == 0):
                redrawn = name.endswith("c_proj.bias") and abs(p.std().item() - scaled) < 0.3 * scaled and any(
                    ptr == p.data_ptr() and std is not None and abs(std - scaled) < 1e-9 for ptr, std in watch.draws)
                raise AssertionError(f"{BIAS_REDRAWN + '; ' if redrawn else ''}{name} does not start at zero "
                                     f"(up to {p.abs().max().item():.3g})")
        if ("ln_" in name) and name.endswith(".weight"):
            assert torch.all(p == 1), f"{name} does not start at one: a LayerNorm starts as the identity"


def test_gpt_is_causal_end_to_end(step):
    """Change the token at position 3: the logits at positions 0, 1, 2 must not move; at 3 they must."""
    model = scrambled(step).eval()
    idx = tokens(B, BLOCK)
    logits, _ = forward(model, idx)
    idx2 = idx.clone()
    idx2[:, 3] = (idx2[:, 3] + 1) % V
    logits2, _ = forward(model, idx2)
    assert logits.shape == (B, BLOCK, V), f"logits have shape {tuple(logits.shape)}, expected {(B, BLOCK, V)}"
    moved = (logits2 - logits).abs().amax(dim=(0, 2))  # (T,)
    assert moved[:3].max() < 1e-5, (
        f"changing the token at position 3 changed the logits before it (by up to {moved[:3].max().item():.2e}): "
        f"nothing may flow backwards in time"
    )
    assert moved[3] > 1e-6, "changing the token at position 3 did not change its own logits"


def test_too_long_an_input_is_refused_clearly(step):
    model = make(step)
    try:
        model(tokens(1, BLOCK + 1))
    except ValueError as error:
        assert "block_size" in str(error), f"the error should name block_size; it says: {error}"
    else:
        raise AssertionError(
            f"a sequence of {BLOCK + 1} tokens with block_size={BLOCK} was accepted: the embeddings of step 3 refuse "
            f"it with a ValueError; call self.transformer.emb(idx, start)"
        )


def test_loss_stays_finite_for_huge_logits(step):
    """Scale the final LayerNorm's weight by 10,000: the logits grow 10,000-fold (spread over hundreds), the
    softmax of the right token underflows to 0 in float32, and log(softmax) would be -inf. F.cross_entropy
    works in log space (log-sum-exp) and stays finite."""
    model = make(step).eval()
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(1e4)
    logits, loss = forward(model, idx, targets)
    spread = (logits.amax(-1) - logits.amin(-1)).min().item()
    if spread < 200:
        found = outputs_of_mistakes(model, idx)
        raise AssertionError(f"{cause_of(logits, found)}the logits did not grow when ln_f.weight was scaled by "
                             f"10,000 (spread {spread:.1f})")
    want = losses_of_mistakes(logits, targets)[None]
    assert loss is not None and torch.isfinite(loss), (
        f"{NOT_LOG_SPACE + ': ' if torch.isfinite(want) else ''}the loss is {loss} for large logits, where "
        f"F.cross_entropy (log-sum-exp) gives {want.item():.2f}"
    )
    found = losses_of_mistakes(logits, targets)
    assert same(loss, found[None], atol=1e-2), (
        f"{cause_of(loss, found, 'the loss')}for large logits the loss is {loss.item():.2f}, but F.cross_entropy of the "
        f"logits gives {found[None].item():.2f}"
    )


class RecordingCache:
    """A stand-in for step 10's cache of one block: it counts the calls and passes k and v through."""

    def __init__(self):
        self.calls = 0

    def update(self, k, v):
        self.calls += 1
        return k, v


class ModelCache:
    """A stand-in for step 10's cache of the whole model: `length` tokens seen so far, one cache per block."""

    def __init__(self, n_layer, length):
        self.length = length
        self.layers = [RecordingCache() for _ in range(n_layer)]


def test_the_cache_reaches_the_embeddings_and_every_block(step):
    """Step 10 hands forward a cache: its `length` is where the new tokens start (positions 3, 4, ... here),
    and block i must receive cache.layers[i]."""
    model = make(step).eval()
    starts, given = [], []

    def record_start(module, args, kwargs):
        starts.append(args[1] if len(args) > 1 else kwargs.get("start", 0))

    def record_cache(module, args, kwargs):
        given.append(args[1] if len(args) > 1 else kwargs.get("cache"))

    handles = [model.transformer.emb.register_forward_pre_hook(record_start, with_kwargs=True)]
    handles += [block.register_forward_pre_hook(record_cache, with_kwargs=True) for block in model.transformer.h]
    try:
        cache = ModelCache(L, length=3)
        forward(model, tokens(B, T), cache=cache)
    finally:
        for handle in handles:
            handle.remove()
    assert starts == [3], (
        f"{START_IGNORED + ': ' if starts == [0] else ''}with a cache holding 3 tokens the embeddings got "
        f"start={starts[0] if starts else None}, expected 3 (start = cache.length)"
    )
    if len(given) == L and all(g is cache.layers[0] for g in given):
        raise AssertionError(f"{SAME_LAYER}, cache.layers[0]: block i needs cache.layers[i]")
    if given and all(g is None for g in given):
        raise AssertionError(f"{CACHE_NOT_PASSED}: x = block(x, cache.layers[i] if cache is not None else None)")
    calls = [layer.calls for layer in cache.layers]
    assert calls == [1] * L, f"each block should use its own layer of the cache once, got calls {calls}"


class ConcatCache:
    """A working cache of one block, written here: it keeps every key and value handed to it."""

    def __init__(self):
        self.k = self.v = None
        self.length = 0

    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        self.length = self.k.shape[2]
        return self.k, self.v


class WorkingCache:
    def __init__(self, n_layer):
        self.layers = [ConcatCache() for _ in range(n_layer)]

    @property
    def length(self):
        return self.layers[0].length


def test_with_a_cache_the_logits_equal_those_of_the_whole_sequence(step):
    """Feed 3 tokens, then 2 more, through a working cache (written in this check): the 2 new positions get the
    same logits as positions 3 and 4 of one pass over all 5 tokens."""
    model = scrambled(step).eval()
    idx = tokens(B, T, seed=7)
    whole, _ = forward(model, idx)
    cache = WorkingCache(L)
    with torch.no_grad():
        first, _ = forward(model, idx[:, :3], cache=cache)
        second, _ = forward(model, idx[:, 3:], cache=cache)
    assert same(first, whole[:, :3]), f"with a cache, the logits of the first 3 tokens differ {differs(first, whole[:, :3])}"
    assert same(second, whole[:, 3:]), (
        f"with 3 tokens in the cache, the logits of the next 2 differ from positions 3 and 4 of one pass over the "
        f"whole sequence {differs(second, whole[:, 3:])}"
    )


def test_every_parameter_gets_a_finite_nonzero_gradient(step):
    """One backward pass of the loss over T = block_size positions (so every row of wpe is used; lm_head, tied
    to wte, reaches every row of wte)."""
    model = make(step).train()
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert not frozen, f"these parameters do not learn (requires_grad is False): {frozen[:4]}"
    _, loss = forward(model, tokens(B, BLOCK), tokens(B, BLOCK, seed=2))
    assert loss.requires_grad, "the loss carries no gradient: is something computed under torch.no_grad() or detached?"
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}'s gradient has nan or inf"
        assert p.grad.abs().sum() > 0, f"{name}'s gradient is zero"


def test_gradients_are_right_by_finite_differences(step):
    """gradcheck in float64 (fast mode) on a tiny GPT (vocab 5, n_embd 4, n_head 2, one layer, T 3): the loss
    with respect to every parameter."""
    model = make(step, vocab_size=5, block_size=4, n_embd=4, n_head=2, n_layer=1, d_ff=6).double()
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    idx, targets = tokens(1, 3, high=5, seed=8), tokens(1, 3, high=5, seed=9)

    def loss_of(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (idx, targets))[1]

    loss = loss_of(*params)
    assert loss.dtype == torch.float64, f"a float64 model gave a {loss.dtype} loss: keep the dtype"
    try:
        torch.autograd.gradcheck(loss_of, params, eps=1e-6, atol=1e-5, fast_mode=True)
    except torch.autograd.gradcheck.GradcheckError as error:
        first = str(error).strip().splitlines()[0]
        raise AssertionError(f"the gradients disagree with finite differences (float64 gradcheck): {first}") from None


def test_a_call_changes_neither_its_inputs_nor_the_mode_nor_the_random_stream(step):
    model = scrambled(step).eval()
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    targets[0, 0] = -1
    idx0, targets0 = idx.clone(), targets.clone()
    rng = torch.get_rng_state()
    logits, loss = forward(model, idx, targets)
    assert torch.equal(idx, idx0), "the call changed its input idx"
    assert torch.equal(targets, targets0), "the call changed its targets"
    assert not model.training, "the call switched the model to training mode"
    assert torch.equal(torch.get_rng_state(), rng), "in eval mode the call drew random numbers"
    again, loss2 = forward(model, idx, targets)
    assert torch.equal(logits, again) and torch.equal(loss, loss2), "two calls on the same input gave different results"
    model.train()
    forward(model, idx, targets)
    assert model.training, "the call switched the model to eval mode"


def test_dropout_acts_in_training_and_not_in_eval(step):
    """dropout=0.3: in eval the logits equal the model's own parts assembled (nothing dropped); in training they
    differ, and the same seed gives the same logits."""
    model = scrambled(step, dropout=0.3)
    idx = tokens(B, T, seed=10)
    model.eval()
    logits, _ = forward(model, idx)
    found = outputs_of_mistakes(model, idx)
    assert same(logits, found[None]), (
        f"{cause_of(logits, found)}in eval mode with dropout=0.3 the logits differ from lm_head(ln_f(blocks(emb(idx)))) "
        f"{differs(logits, found[None])}: nothing may be dropped in eval mode"
    )
    model.train()
    torch.manual_seed(11)
    noisy, _ = forward(model, idx)
    torch.manual_seed(11)
    again, _ = forward(model, idx)
    assert not same(noisy, logits), "in training mode with dropout=0.3 the logits equal the eval logits"
    assert torch.equal(noisy, again), "in training mode the same torch.manual_seed gave different logits"


def test_a_float64_model_gives_float64_logits_and_loss(step):
    model = scrambled(step).double().eval()
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    logits, loss = forward(model, idx, targets)
    if logits.dtype == torch.float32:
        raise AssertionError(f"{LOGITS_FLOAT32} for a float64 model: keep lm_head's dtype")
    assert logits.dtype == torch.float64 and loss.dtype == torch.float64, (
        f"a float64 model gave {logits.dtype} logits and a {loss.dtype} loss: keep the dtype"
    )
    found = outputs_of_mistakes(model, idx)
    assert same(logits, found[None], atol=1e-10), (
        f"{cause_of(logits, found)}in float64 the logits differ from lm_head(ln_f(blocks(emb(idx)))) "
        f"{differs(logits, found[None])}"
    )


def test_runs_on_the_device_of_its_input(step):
    """On the meta device (shapes only): a tensor made without device= would sit on the CPU."""
    model = make(step).to("meta").eval()
    idx, targets = tokens(B, T).to("meta"), tokens(B, T, seed=2).to("meta")
    watch = OffDevice("meta")
    try:
        with watch:
            logits, loss = forward(model, idx, targets)
    except (NotImplementedError, RuntimeError) as error:
        if isinstance(error, NotImplementedError) and not str(error):
            raise  # the stub's own: write the code first
        if watch.found:
            raise AssertionError(f"a tensor made without device= is on the CPU while idx is on the meta device (made "
                                 f"by torch.{watch.found[0]}): make it on idx.device") from None
        if "device" in str(error):
            raise AssertionError(f"the model fails on the meta device: {str(error).splitlines()[0]}") from None
        return  # an operation the meta device cannot run (a boolean mask, .item()): nothing here to check
    assert not watch.found, (
        f"a tensor made without device= is on the CPU while idx is on the meta device (made by "
        f"torch.{watch.found[0]}): make it on idx.device"
    )
    assert logits.device.type == "meta" and tuple(logits.shape) == (B, T, V) and loss.device.type == "meta", (
        f"on the meta device the logits should be a meta tensor of shape {(B, T, V)}, got {logits.device} "
        f"{tuple(logits.shape)}"
    )


def test_a_saved_and_loaded_model_is_the_same_model(step, tmp_path):
    """state_dict -> torch.save -> a fresh model (another seed) -> load_state_dict: the same logits, GPT-2's keys,
    and lm_head still one tensor with wte."""
    model = scrambled(step).eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    keys = set(torch.load(path))
    assert keys == set(gpt2_names(L)), f"the state dict's keys differ from GPT-2's: {sorted(keys ^ set(gpt2_names(L)))[:4]}"
    fresh = make(step, seed=5).eval()
    fresh.load_state_dict(torch.load(path))
    idx = tokens(B, T)
    assert same(forward(fresh, idx)[0], forward(model, idx)[0], atol=1e-6), "after loading, the logits differ"
    assert fresh.lm_head.weight is fresh.transformer.emb.wte.weight, (
        "after loading, lm_head.weight and transformer.emb.wte.weight are two tensors, not one"
    )
