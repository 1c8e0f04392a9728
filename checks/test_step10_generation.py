"""Checks for step 10: generation.

The model is a tiny GPT (vocab_size=13, block_size=8, n_embd=12, n_head=3, n_layer=2); prompts of 3 tokens
and 20 new tokens go well past block_size, so cropping and the cache's rebuild are exercised every time.
"""

import importlib

import pytest
import torch

VOCAB, BLOCK = 13, 8
NEG_INF = float("-inf")


def tiny_gpt(step, seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=3, n_embd=12, d_ff=20, dropout=0.0)
    settings.update(overrides)
    model = step.GPT(step.GPTConfig(**settings))
    with torch.no_grad():  # bolder weights than GPT-2's start, so that the next token depends on the context
        for p in model.parameters():
            p.mul_(8.0)
    return model.eval()


def prompt(B=2, T=3, seed=1):
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def distinct_logits(B, V, seed=0):
    """Rows of distinct logits, at least 0.1 apart, in a shuffled order."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.arange(V, dtype=torch.float32)[torch.randperm(V, generator=g)] * 0.37 for _ in range(B)]
    return torch.stack(rows) - 2.0


def raises_value_error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ValueError:
        return True
    return False


# temperature

def test_temperature_divides_the_logits(step):
    """[2., 4.] at temperature 2 -> [1., 2.]; at temperature 0.5 -> [4., 8.]."""
    logits = torch.tensor([[2.0, 4.0]])
    got = step.apply_temperature(logits, 2.0)
    assert torch.allclose(got, torch.tensor([[1.0, 2.0]])), (
        f"apply_temperature([2., 4.], 2) should be [1., 2.] (logits / temperature), got {got.tolist()}"
    )
    got = step.apply_temperature(logits, 0.5)
    assert torch.allclose(got, torch.tensor([[4.0, 8.0]])), (
        f"apply_temperature([2., 4.], 0.5) should be [4., 8.]: a low temperature sharpens, got {got.tolist()}"
    )
    for bad in (0.0, -1.0):
        assert raises_value_error(step.apply_temperature, logits, bad), f"temperature {bad} should raise ValueError"


@pytest.mark.parametrize("temperature", [0.0, 1e-6], ids=["temperature 0", "temperature 1e-6"])
def test_temperature_near_zero_picks_the_likeliest_token(step, temperature):
    logits = distinct_logits(6, VOCAB)
    got = step.sample_next(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    want = logits.argmax(dim=-1, keepdim=True)
    assert tuple(got.shape) == (6, 1) and got.dtype == torch.long, (
        f"sample_next should return token ids of shape (B, 1) = (6, 1), dtype long; got {tuple(got.shape)}, {got.dtype}"
    )
    assert torch.equal(got, want), (
        f"at temperature {temperature} sample_next should pick the largest logit of each row (argmax): expected "
        f"{want.flatten().tolist()}, got {got.flatten().tolist()}"
    )


# top-k

def test_top_k_of_the_docstring_example(step):
    """[[1., 3., 2., 0.]], k=2: the two largest are 3 (index 1) and 2 (index 2) -> [[-inf, 3., 2., -inf]]."""
    got = step.top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2)
    want = torch.tensor([[NEG_INF, 3.0, 2.0, NEG_INF]])
    assert torch.equal(got, want), f"top_k_filter([[1, 3, 2, 0]], 2) should be {want.tolist()}, got {got.tolist()}"


@pytest.mark.parametrize("k", [1, 3, VOCAB - 1, VOCAB, VOCAB + 5], ids=["k=1", "k=3", "k=V-1", "k=V", "k>V"])
def test_top_k_keeps_exactly_the_k_largest(step, k):
    logits = distinct_logits(3, VOCAB, seed=k)
    original = logits.clone()
    got = step.top_k_filter(logits, k)
    assert torch.equal(logits, original), "top_k_filter changed its input: return a new tensor"
    assert got.shape == logits.shape, f"top_k_filter should keep the shape {tuple(logits.shape)}, got {tuple(got.shape)}"
    kept = torch.isfinite(got)
    want_k = min(k, VOCAB)
    counts = kept.sum(dim=-1).tolist()
    assert counts == [want_k] * 3, (
        f"with k={k} and {VOCAB} tokens each row should keep exactly {want_k}, kept {counts}"
        + (" (k larger than the vocabulary keeps everything)" if k > VOCAB else "")
    )
    top = logits.topk(want_k, dim=-1).indices
    assert kept.gather(-1, top).all(), f"top_k_filter kept the wrong tokens: keep the {want_k} largest logits"
    assert torch.equal(got[kept], logits[kept]), "the kept logits should be unchanged"
    assert (got[~kept] == NEG_INF).all(), "the removed logits should be -inf (probability 0 after softmax)"
    assert raises_value_error(step.top_k_filter, logits, 0), "top_k=0 should raise ValueError"


# top-p

# probs [0.05, 0.3, 0.5, 0.15] (not sorted on purpose): the likeliest are index 2 (0.5), 1 (0.3), 3 (0.15), 0
@pytest.mark.parametrize("p, kept", [(0.3, [2]), (0.5, [2]), (0.7, [2, 1]), (0.8, [2, 1]), (0.81, [2, 1, 3]),
                                     (1.0, [2, 1, 3, 0])],
                         ids=["p=0.3", "p=0.5", "p=0.7", "p=0.8", "p=0.81", "p=1.0"])
def test_top_p_keeps_the_smallest_set_that_reaches_p(step, p, kept):
    """Sorted: 0.5, 0.3, 0.15, 0.05; running totals 0.5, 0.8, 0.95, 1.0.
    p=0.7: 0.5 < 0.7, 0.5 + 0.3 = 0.8 >= 0.7 -> 2 tokens.  p=0.8: 0.8 reaches 0.8 -> 2.  p=0.81 -> 3.
    p=1.0 -> all 4.  p=0.5: the first token alone reaches 0.5 -> 1.
    """
    logits = torch.tensor([[0.05, 0.3, 0.5, 0.15]]).log()
    got = step.top_p_filter(logits, p)
    survivors = sorted(torch.isfinite(got[0]).nonzero().flatten().tolist())
    assert survivors == sorted(kept), (
        f"keep the likeliest tokens until their total reaches p, the one that crosses p included: p={p} should "
        f"keep indices {sorted(kept)}, kept {survivors}\n(probs [0.05, 0.3, 0.5, 0.15])"
    )
    assert torch.equal(got[0, kept], logits[0, kept]), "the kept logits should be unchanged"


def test_top_p_keeps_the_token_that_crosses_p(step):
    """probs [0.125, 0.5, 0.125, 0.25], exact in binary. p=0.75: 0.5 + 0.25 = 0.75 reaches p exactly -> 2 tokens
    (indices 1 and 3); p=0.76 needs a third token; p=0.6: 0.5 is not enough, 0.75 crosses 0.6 -> still 2."""
    logits = torch.tensor([[0.125, 0.5, 0.125, 0.25]]).log()
    cases = {0.75: 2, 0.76: 3, 0.6: 2}
    for p, want in cases.items():
        got = int(torch.isfinite(step.top_p_filter(logits, p)).sum())
        assert got == want, (
            f"a total that reaches p exactly is enough: probs [0.125, 0.5, 0.125, 0.25] with p={p} keep {want} "
            f"tokens, kept {got}\nA token stays while the tokens before it add up to less than p"
        )


def test_top_p_works_row_by_row(step):
    logits = torch.tensor([[0.05, 0.3, 0.5, 0.15], [0.7, 0.1, 0.1, 0.1]]).log()
    got = torch.isfinite(step.top_p_filter(logits, 0.7))
    want = torch.tensor([[False, True, True, False], [True, False, False, False]])
    assert torch.equal(got, want), (
        f"filter each row on its own (dim=-1) and put its mask back in its own order: with p=0.7 expected "
        f"{want.tolist()}, kept {got.tolist()}"
    )
    for bad in (0.0, -0.1, 1.5):
        assert raises_value_error(step.top_p_filter, logits, bad), f"top_p={bad} should raise ValueError"


# sampling

def frequencies(step, probs, n=4000, **settings):
    logits = torch.tensor(probs).log().expand(n, len(probs))
    draws = step.sample_next(logits, generator=torch.Generator().manual_seed(0), **settings)
    assert tuple(draws.shape) == (n, 1), f"sample_next should return shape (B, 1) = ({n}, 1), got {tuple(draws.shape)}"
    return torch.bincount(draws.flatten(), minlength=len(probs)).double() / n


def normalise(weights):
    total = sum(weights)
    return [w / total for w in weights]


PROBS = [0.4, 0.3, 0.2, 0.1]
SAMPLING_CASES = {
    "plain": ({}, PROBS),
    "temperature 2": ({"temperature": 2.0}, normalise([q ** 0.5 for q in PROBS])),     # [0.325, 0.282, 0.230, 0.163]
    "temperature 0.5": ({"temperature": 0.5}, normalise([q ** 2 for q in PROBS])),     # [0.533, 0.3, 0.133, 0.033]
    "top_k 3": ({"top_k": 3}, [4 / 9, 3 / 9, 2 / 9, 0.0]),
    "top_p 0.6": ({"top_p": 0.6}, [4 / 7, 3 / 7, 0.0, 0.0]),
    "top_k 3 and top_p 0.8": ({"top_k": 3, "top_p": 0.8}, [4 / 9, 3 / 9, 2 / 9, 0.0]),
}


@pytest.mark.parametrize("case", list(SAMPLING_CASES))
def test_sampled_frequencies_match_the_filtered_distribution(step, case):
    """4000 draws; each frequency must be within 0.03 of its probability (about 4 standard deviations).
    Temperature 2 turns probabilities q into q^(1/2), renormalised: softmax(log(q) / 2)."""
    settings, want = SAMPLING_CASES[case]
    got = frequencies(step, PROBS, **settings)
    for token, (f, q) in enumerate(zip(got.tolist(), want)):
        if q == 0.0:
            assert f == 0.0, f"{case}: token {token} should never be drawn (it was filtered out), drawn {f:.1%} of the time"
        assert abs(f - q) < 0.03, (
            f"{case}: token {token} drawn {f:.3f} of the time, expected about {q:.3f}: divide the logits by the "
            f"temperature, filter, softmax, then torch.multinomial"
        )


def test_sampling_is_repeatable_with_a_seeded_generator(step):
    logits = torch.zeros(50, VOCAB)
    a = step.sample_next(logits, generator=torch.Generator().manual_seed(5))
    torch.rand(3)  # move the global generator on: only the given one may matter
    b = step.sample_next(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b), "two draws with generators seeded alike differ: pass generator= to torch.multinomial"
    assert len(set(a.flatten().tolist())) > 1, "50 draws from a uniform distribution all gave the same token"
    assert raises_value_error(step.sample_next, logits, temperature=-1.0), "temperature -1 should raise ValueError"


# the KV cache

def test_layer_cache_appends_keys_and_values(step):
    B, nh, hs = 2, 3, 4
    cache = step.LayerCache(BLOCK)
    g = torch.Generator().manual_seed(0)
    k1, v1 = torch.randn(B, nh, 2, hs, generator=g), torch.randn(B, nh, 2, hs, generator=g)
    k2, v2 = torch.randn(B, nh, 1, hs, generator=g), torch.randn(B, nh, 1, hs, generator=g)
    k, v = cache.update(k1, v1)
    assert tuple(k.shape) == (B, nh, 2, hs) and torch.equal(k, k1) and torch.equal(v, v1), (
        f"the first update of an empty cache should return exactly its own k and v, shape {(B, nh, 2, hs)}; got "
        f"{tuple(k.shape)}"
    )
    assert cache.length == 2, f"after storing 2 tokens the cache's length should be 2, got {cache.length}"
    k, v = cache.update(k2, v2)
    assert tuple(k.shape) == (B, nh, 3, hs), (
        f"after 2 + 1 tokens update should return keys of shape (B, nh, 3, hs) = {(B, nh, 3, hs)}, got "
        f"{tuple(k.shape)}: return the filled part of the buffer, up to the new length"
    )
    assert torch.equal(k, torch.cat((k1, k2), dim=2)) and torch.equal(v, torch.cat((v1, v2), dim=2)), (
        "update should return the earlier keys and values followed by the new ones, along the time axis (dim 2), "
        "keys with keys and values with values"
    )
    assert cache.length == 3, f"after 2 + 1 tokens the cache's length should be 3, got {cache.length}"
    assert raises_value_error(cache.update, torch.zeros(B, nh, BLOCK, hs), torch.zeros(B, nh, BLOCK, hs)), (
        "a cache of block_size tokens should refuse more (ValueError)"
    )


def test_kv_cache_length_follows_the_model(step):
    model = tiny_gpt(step)
    cache = step.KVCache(model.config.n_layer, BLOCK)
    idx = prompt(T=5)
    with torch.no_grad():
        model(idx[:, :3], cache=cache)
        assert cache.length == 3, f"after a forward of 3 tokens the cache's length should be 3, got {cache.length}"
        model(idx[:, 3:4], cache=cache)
        assert cache.length == 4, (
            f"after 3 + 1 tokens the cache's length should be 4, got {cache.length}: add T to length in update"
        )
    cache.reset()
    assert cache.length == 0, "after reset() the cache should be empty"


def test_cached_forward_gives_the_logits_of_a_full_forward(step):
    """Feeding tokens one at a time through the cache must give, at every position, the full forward's logits."""
    model = tiny_gpt(step)
    idx = prompt(T=BLOCK)
    cache = step.KVCache(model.config.n_layer, BLOCK)
    with torch.no_grad():
        full, _ = model(idx)
        first, _ = model(idx[:, :3], cache=cache)
        steps = [first]
        for t in range(3, BLOCK):
            logits, _ = model(idx[:, t:t + 1], cache=cache)
            steps.append(logits)
    cached = torch.cat(steps, dim=1)
    worst = (cached - full).abs().amax(dim=(0, 2))
    bad = [t for t in range(BLOCK) if worst[t] > 1e-5]
    assert not bad, (
        f"with the cache, logits at positions {bad} differ from a full forward: each token must see all earlier "
        f"keys and values, at its own position\nlargest difference {worst.max():.3g}"
    )


# the sampling loop

@pytest.mark.parametrize("T", [1, BLOCK], ids=["T=1", "T=block_size"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_generate_returns_the_prompt_followed_by_new_tokens(step, T, use_cache):
    model = tiny_gpt(step)
    idx = prompt(T=T)
    out = step.generate(model, idx, 5, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
    assert tuple(out.shape) == (2, T + 5), f"generate with a prompt of {T} and 5 new tokens should give (2, {T + 5}), got {tuple(out.shape)}"
    assert torch.equal(out[:, :T], idx), "generate's output should start with the prompt, unchanged"
    assert out.dtype == torch.long and 0 <= int(out.min()) and int(out.max()) < VOCAB, "new tokens should be ids in the vocabulary"
    assert raises_value_error(lambda: step.generate(model, idx[:, :0], 3)), "an empty prompt should raise ValueError"


@pytest.mark.parametrize("T", [3, BLOCK + 4], ids=["short prompt", "prompt longer than block_size"])
def test_uncached_generation_crops_to_the_last_block_size_tokens(step, T):
    """Greedy, without a cache: each new token must be the argmax of the model on the last block_size tokens."""
    model = tiny_gpt(step)
    idx = prompt(T=T)
    out = step.generate(model, idx, 14, temperature=0.0, use_cache=False)
    assert tuple(out.shape) == (2, T + 14), f"expected shape (2, {T + 14}), got {tuple(out.shape)}"
    want = idx
    with torch.no_grad():
        for _ in range(14):
            logits, _ = model(want[:, -BLOCK:])
            want = torch.cat((want, logits[:, -1].argmax(dim=-1, keepdim=True)), dim=1)
    assert torch.equal(out, want), (
        "greedy generation differs from the model run on the last block_size tokens (idx[:, -block_size:]), "
        "argmax of the last position"
    )


@pytest.mark.parametrize("T", [3, BLOCK, BLOCK + 4], ids=["short prompt", "prompt of block_size", "long prompt"])
@pytest.mark.parametrize("mode", ["greedy", "sampled"])
def test_cached_and_uncached_generation_give_the_same_tokens(step, mode, T):
    model = tiny_gpt(step)
    settings = {"temperature": 0.0} if mode == "greedy" else {"temperature": 0.9, "top_k": 8, "top_p": 0.95}
    runs = []
    for use_cache in (False, True):
        runs.append(step.generate(model, prompt(T=T), 20, use_cache=use_cache,
                                  generator=torch.Generator().manual_seed(3), **settings))
    differ = (runs[0] != runs[1]).any(dim=0).nonzero().flatten().tolist()
    if differ and differ[0] <= BLOCK:
        advice = "while the cache has room, run only the newest token, with cache=cache"
    else:
        advice = "once the cache is full, reset it and run the last block_size tokens"
    assert not differ, (
        f"{mode} generation with the cache differs from generation without it, from position {differ[0]} "
        f"(block_size={BLOCK}, prompt of {T}): {advice}"
    )


def test_generate_tokens_yields_one_token_at_a_time(step):
    model = tiny_gpt(step)
    idx = prompt()
    stream = step.generate_tokens(model, idx, 4, temperature=0.0)
    first = next(iter(stream))
    assert tuple(first.shape) == (2, 1), f"each yielded token should have shape (B, 1) = (2, 1), got {tuple(first.shape)}"
    rest = list(stream)
    assert len(rest) == 3, f"generate_tokens(..., max_new_tokens=4) yielded {1 + len(rest)} tokens"
    together = torch.cat([idx, first, *rest], dim=1)
    assert torch.equal(together, step.generate(model, idx, 4, temperature=0.0)), (
        "the tokens yielded one by one differ from generate's"
    )
    assert torch.equal(step.generate(model, idx, 0), idx), "max_new_tokens=0 should return the prompt as it is"


def test_generation_turns_dropout_off_and_restores_the_mode(step):
    model = tiny_gpt(step, dropout=0.5).train()
    a = step.generate(model, prompt(), 10, temperature=0.0)
    assert model.training, "after generation the model is no longer in training mode: put back the mode it was in"
    b = step.generate(model, prompt(), 10, temperature=0.0)
    model.eval()
    c = step.generate(model, prompt(), 10, temperature=0.0)
    assert torch.equal(a, b) and torch.equal(a, c), (
        "greedy generation from a model in training mode differs from run to run: dropout is on. Generate "
        "inside `with eval_mode(model):`"
    )
    assert not model.training, "a model in eval mode came back in training mode"


def test_a_prompt_of_unseen_characters_still_generates(step):
    """Characters the tokenizer never saw fall back to their UTF-8 bytes (ids below 256), which the model knows."""
    tokenizer_module = importlib.import_module(step.__package__ + ".step01_tokenizer")
    tokenizer = tokenizer_module.Tokenizer()
    tokenizer.train("the cat sat on the mat. the dog sat on the log. " * 4, 262)
    model = tiny_gpt(step, vocab_size=tokenizer.vocab_size)
    text = "Zażółć 😀 ∑"
    ids = tokenizer.encode(text)
    idx = torch.tensor([ids], dtype=torch.long)
    out = step.generate(model, idx, 6, temperature=0.8, top_k=20, generator=torch.Generator().manual_seed(0))
    assert tuple(out.shape) == (1, len(ids) + 6), f"expected shape (1, {len(ids) + 6}), got {tuple(out.shape)}"
    decoded = tokenizer.decode(out[0].tolist())
    assert decoded.startswith(text), f"the output should start with the prompt {text!r}, got {decoded!r}"
