"""Checks for step 8: the whole GPT, with tied weights, GPT-2's initialisation and the loss.

Most checks use a tiny model with distinct sizes (B=2, T=5, vocab_size=37, block_size=8, n_embd=12, n_head=3,
n_layer=2, d_ff=20), so that a swapped axis cannot pass by accident. The loss and initialisation checks use
bigger models, where the statistics they measure are stable.
"""

import math

import pytest
import torch
import torch.nn.functional as F

B, T, V, BLOCK, C, NH, L, D_FF = 2, 5, 37, 8, 12, 3, 2, 20


def make(step, seed=0, **overrides):
    sizes = dict(block_size=BLOCK, vocab_size=V, n_embd=C, n_head=NH, n_layer=L, d_ff=D_FF, dropout=0.0)
    sizes.update(overrides)
    torch.manual_seed(seed)
    return step.GPT(step.GPTConfig(**sizes))


def tokens(*shape, high=V, seed=1):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


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
    out = model(tokens(B, t))
    assert isinstance(out, tuple) and len(out) == 2, f"forward should return (logits, loss), got {type(out).__name__}"
    logits, loss = out
    assert tuple(logits.shape) == (B, t, V), (
        f"logits have shape {tuple(logits.shape)}, expected (B, T, vocab_size) = {(B, t, V)}: every position "
        f"gets one score per vocabulary token (apply lm_head to all positions, not just the last)"
    )
    assert torch.isfinite(logits).all(), f"the logits have nan or inf at T = {t}"
    _, loss = model(tokens(B, t), tokens(B, t, seed=2))
    assert loss is not None and torch.isfinite(loss), f"the loss is {loss} at T = {t}, expected a finite number"


def test_loss_is_none_without_targets(step):
    _, loss = make(step)(tokens(B, T))
    assert loss is None, f"without targets the loss should be None, got {loss!r}"


def test_lm_head_is_tied_to_the_token_embedding(step):
    model = make(step)
    wte = model.transformer.emb.wte.weight
    assert model.lm_head.weight is wte, (
        "lm_head.weight is a separate tensor from the token embedding: tie them with "
        "self.lm_head.weight = self.transformer.emb.wte.weight"
    )
    assert tuple(wte.shape) == (V, C), (
        f"the tied matrix should be (vocab_size, n_embd) = {(V, C)}, got {tuple(wte.shape)}"
    )


def test_lm_head_has_no_bias(step):
    model = make(step)
    assert model.lm_head.bias is None, "lm_head has a bias: GPT-2's output layer has none (nn.Linear(..., bias=False))"


def test_parameters_have_the_gpt2_names(step):
    model = make(step)
    names = set(dict(model.named_parameters(remove_duplicate=False)))
    want = ["transformer.emb.wte.weight", "transformer.emb.wpe.weight", "transformer.ln_f.weight",
            "transformer.ln_f.bias", "lm_head.weight"]
    for i in range(L):
        want += [f"transformer.h.{i}.{part}" for part in (
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
            "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
            "mlp.c_proj.weight", "mlp.c_proj.bias")]
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


def test_parameter_count_matches_the_closed_form(step):
    """V=37, block_size=8, C=12, n_layer=2, d_ff=20:
    embeddings 37*12 + 8*12 = 540; per layer 48 + (432 + 36) + (144 + 12) + (240 + 20) + (240 + 12) = 1184;
    final LayerNorm 24; total 540 + 2 * 1184 + 24 = 2932 (lm_head, tied, adds nothing)."""
    model = make(step)
    want = closed_form_count(V, BLOCK, C, L, D_FF)
    assert want == 2932, "the check's own formula is off"
    got = sum(p.numel() for p in model.parameters())  # a shared tensor is yielded once
    extra = got - want
    words = {V * C: f"{V * C} = vocab_size * n_embd too many: is lm_head tied to the token embedding?",
             V: f"{V} = vocab_size too many: lm_head should have no bias",
             -2 * C: "2 * n_embd too few: is the final LayerNorm ln_f missing?"}
    assert got == want, (
        f"the model has {got} parameters, the closed form gives {want}: "
        + words.get(extra, f"{extra:+d} off; check each part's shape against the formula")
    )
    assert model.num_params() == want, f"num_params() returns {model.num_params()}, expected {want}"


def test_loss_at_initialisation_is_close_to_ln_vocab_size(step):
    """With GPT-2's small initial weights every logit is near 0, the prediction near uniform over the 512
    tokens, and the loss for random targets near -ln(1/512) = ln(512) = 6.238 (within 0.3)."""
    model = make(step, vocab_size=512, block_size=16, n_embd=32, n_head=4, d_ff=64)
    _, loss = model(tokens(4, 16, high=512), tokens(4, 16, high=512, seed=2))
    want = math.log(512)
    assert loss is not None and abs(loss.item() - want) < 0.3, (
        f"the loss at initialisation is {loss.item() if loss is not None else None:.1f}, far from "
        f"ln(512) = {want:.2f}: are the weights initialised with std 0.02?"
    )


def test_loss_equals_cross_entropy_of_the_logits(step):
    model = make(step)
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    logits, loss = model(idx, targets)
    want = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
    assert loss is not None and loss.dim() == 0, f"the loss should be a single number (a 0-d tensor), got {loss!r}"
    assert torch.allclose(loss, want, atol=1e-6), (
        f"the loss {loss.item():.6f} differs from F.cross_entropy of the logits over all B * T positions "
        f"({want.item():.6f}): flatten logits to (B * T, vocab_size) and targets to (B * T,)"
    )


def test_targets_of_minus_one_are_left_out_of_the_loss(step):
    model = make(step)
    idx, targets = tokens(B, T), tokens(B, T, seed=2)
    targets[0, :2] = -1
    targets[1, 4] = -1
    try:
        logits, loss = model(idx, targets)
    except (IndexError, RuntimeError) as error:
        raise AssertionError(
            f"a target of -1 should be left out of the loss: pass ignore_index=-1 to F.cross_entropy ({error})"
        ) from None
    keep = targets.reshape(-1) != -1
    want = F.cross_entropy(logits.reshape(B * T, V)[keep], targets.reshape(-1)[keep])
    assert torch.allclose(loss, want, atol=1e-6), (
        f"the loss {loss.item():.6f} should average over the 7 positions whose target is not -1 "
        f"({want.item():.6f}): pass ignore_index=-1 to F.cross_entropy"
    )


def test_init_weights_draws_linear_and_embedding_weights_with_std_0_02(step):
    """_init_weights on fresh layers: Linear(256, 256) weight std 0.02 and bias 0; Embedding(256, 64) std 0.02.
    PyTorch's own defaults would give std 0.036 (Linear) and 1.0 (Embedding)."""
    model = make(step)
    torch.manual_seed(1)
    linear, embedding = torch.nn.Linear(256, 256), torch.nn.Embedding(256, 64)
    model._init_weights(linear)
    model._init_weights(embedding)
    for what, weight in (("an nn.Linear", linear.weight), ("an nn.Embedding", embedding.weight)):
        std, mean = weight.std().item(), weight.mean().item()
        assert abs(std - 0.02) < 0.002 and abs(mean) < 0.002, (
            f"_init_weights left {what}'s weight with std {std:.4f} (mean {mean:.4f}), expected std 0.02 "
            f"around 0: nn.init.normal_(module.weight, mean=0.0, std=0.02)"
        )
    assert torch.all(linear.bias == 0), "_init_weights should set a Linear's bias to zero: nn.init.zeros_(module.bias)"


def test_gpt2_initialisation_of_the_whole_model(step):
    """A model big enough for stable statistics (n_embd=64, 4 layers): every Linear and Embedding weight
    has std 0.02 (within 10%), except c_proj, the last layer of each residual branch: 0.02 / sqrt(2 * 4) = 0.0071.
    Biases start at 0, LayerNorm weights at 1."""
    n_layer = 4
    model = make(step, vocab_size=256, block_size=32, n_embd=64, n_head=4, n_layer=n_layer, d_ff=128)
    params = dict(model.named_parameters())
    scaled = 0.02 / math.sqrt(2 * n_layer)
    groups = {
        "transformer.emb.wte.weight": ([params["transformer.emb.wte.weight"]], 0.02),
        "transformer.emb.wpe.weight": ([params["transformer.emb.wpe.weight"]], 0.02),
        "attn.c_attn.weight": ([p for n, p in params.items() if n.endswith("attn.c_attn.weight")], 0.02),
        "mlp.c_fc.weight": ([p for n, p in params.items() if n.endswith("mlp.c_fc.weight")], 0.02),
        "attn.c_proj.weight": ([p for n, p in params.items() if n.endswith("attn.c_proj.weight")], scaled),
        "mlp.c_proj.weight": ([p for n, p in params.items() if n.endswith("mlp.c_proj.weight")], scaled),
    }
    for name, (tensors, want) in groups.items():
        assert tensors, f"no parameter named ...{name}: see the GPT-2 names check"
        std = std_of(tensors)
        if "c_proj" in name and abs(std - 0.02) < 0.002:
            raise AssertionError(
                f"{name} starts with std {std:.4f}, expected 0.02 / sqrt(2 * n_layer) = {scaled:.4f}: re-draw every "
                f"c_proj.weight with the std scaled by 1/sqrt(2 * n_layer), after self.apply(self._init_weights)"
            )
        assert abs(std - want) < 0.1 * want, (
            f"{name} starts with std {std:.4f}, expected {want:.4f}: are the weights initialised as GPT-2's "
            f"(self.apply(self._init_weights), then the scaled c_proj)?"
        )
    for name, p in params.items():
        if name.endswith(".bias") and ".ln_" not in name and "ln_f" not in name:
            assert torch.all(p == 0), f"{name} does not start at zero: _init_weights should zero every Linear bias"
        if ("ln_" in name) and name.endswith(".weight"):
            assert torch.all(p == 1), f"{name} does not start at one: a LayerNorm starts as the identity"


def test_gpt_is_causal_end_to_end(step):
    """Change the token at position 3: the logits at positions 0, 1, 2 must not move; at 3 they must."""
    model = make(step).eval()
    idx = tokens(B, BLOCK)
    logits, _ = model(idx)
    idx2 = idx.clone()
    idx2[:, 3] = (idx2[:, 3] + 1) % V
    logits2, _ = model(idx2)
    assert logits.shape == (B, BLOCK, V), f"logits have shape {tuple(logits.shape)}, expected {(B, BLOCK, V)}"
    moved = (logits2 - logits).abs().amax(dim=(0, 2))  # (T,)
    assert moved[:3].max() < 1e-5, (
        f"changing the token at position 3 changed the logits before it (by up to {moved[:3].max().item():.2e}): "
        f"nothing may flow backwards in time; are the blocks the causal blocks of step 7?"
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
    logits, loss = model(idx, targets)
    spread = (logits.amax(-1) - logits.amin(-1)).min().item()
    assert spread > 200, (
        f"the logits did not grow when ln_f.weight was scaled by 10,000 (spread {spread:.1f}): is the final "
        f"LayerNorm ln_f applied before lm_head?"
    )
    assert torch.isfinite(F.softmax(logits, dim=-1)).all(), "the softmax of the logits is not finite"
    assert loss is not None and torch.isfinite(loss), (
        f"the loss is {loss} for large logits: compute it with F.cross_entropy, which works in log space, "
        f"not with log(softmax(...))"
    )
    want = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
    assert torch.allclose(loss, want, rtol=1e-4), (
        f"for large logits the loss is {loss.item():.2f}, but F.cross_entropy of the logits gives {want.item():.2f}"
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
    starts = []

    def record_start(module, args, kwargs):
        starts.append(args[1] if len(args) > 1 else kwargs.get("start", 0))

    handle = model.transformer.emb.register_forward_pre_hook(record_start, with_kwargs=True)
    try:
        cache = ModelCache(L, length=3)
        model(tokens(B, T), cache=cache)
    finally:
        handle.remove()
    assert starts == [3], (
        f"with a cache holding 3 tokens the embeddings got start={starts[0] if starts else None}, expected 3: "
        f"call self.transformer.emb(idx, start)"
    )
    calls = [layer.calls for layer in cache.layers]
    assert calls == [1] * L, (
        f"each block should use its own layer of the cache once, got calls {calls}: "
        f"x = block(x, cache.layers[i] if cache is not None else None)"
    )


def test_every_parameter_gets_a_finite_nonzero_gradient(step):
    """One backward pass of the loss over T = block_size positions (so every row of wpe is used; lm_head, tied
    to wte, reaches every row of wte)."""
    model = make(step).train()
    _, loss = model(tokens(B, BLOCK), tokens(B, BLOCK, seed=2))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient: is it used in forward?"
        assert torch.isfinite(p.grad).all(), f"{name}'s gradient has nan or inf"
        assert p.grad.abs().sum() > 0, f"{name}'s gradient is zero: is it used in forward?"
