"""Checks for step 10: generation.

The model is a tiny GPT (vocab_size=13, block_size=8, n_embd=12, n_head=3, n_layer=2); prompts of 3 tokens
and 20 new tokens go well past block_size, so cropping and the cache's rebuild are exercised every time.

A message names a cause only when the check has seen that very mistake. The sampling checks build, in plain
Python, the distribution sample_next must draw from and the distribution of each known wrong version (filters
in the other order, the temperature after the softmax, ties kept together, ...), and name the one the draws
follow. The generation checks watch every call of the model: the tokens it is shown, its cache, its mode.
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


def normalise(weights):
    total = sum(weights)
    return [w / total for w in weights]


def survivors(filtered_row):
    return torch.isfinite(filtered_row).nonzero().flatten().tolist()


# temperature

def test_temperature_divides_the_logits(step):
    """[2., 4.] at temperature 2 -> [1., 2.]; at temperature 0.5 -> [4., 8.]."""
    logits = torch.tensor([[2.0, 4.0]])
    for t, want in [(2.0, [[1.0, 2.0]]), (0.5, [[4.0, 8.0]])]:
        got = step.apply_temperature(logits.clone(), t)
        if torch.allclose(got, logits * t):
            raise AssertionError(f"apply_temperature([2., 4.], {t}) gave {got.tolist()}, the logits times the "
                                 f"temperature: divide them by it")
        assert torch.allclose(got, torch.tensor(want)), (
            f"apply_temperature([2., 4.], {t}) should be {want} (logits / temperature), got {got.tolist()}"
        )
    for bad in (0.0, -1.0):
        assert raises_value_error(step.apply_temperature, logits, bad), f"temperature {bad} should raise ValueError"


@pytest.mark.parametrize("temperature", [0.0, 1e-6], ids=["temperature 0", "temperature 1e-6"])
def test_temperature_near_zero_picks_the_likeliest_token(step, temperature):
    logits = distinct_logits(6, VOCAB)
    try:
        got = step.sample_next(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    except NotImplementedError:
        raise
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        if temperature == 0:
            raise AssertionError(f"sample_next(temperature=0) raised {type(error).__name__} ({error}): handle "
                                 f"temperature 0 first, with argmax, before dividing by it") from error
        raise
    want = logits.argmax(dim=-1, keepdim=True)
    if tuple(got.shape) == (6,):
        raise AssertionError("sample_next returned shape (6,) for 6 rows, not (6, 1): argmax(dim=-1, keepdim=True)")
    assert tuple(got.shape) == (6, 1) and got.dtype == torch.long, (
        f"sample_next should return token ids of shape (B, 1) = (6, 1), dtype long; got {tuple(got.shape)}, {got.dtype}"
    )
    assert torch.equal(got, want), (
        f"at temperature {temperature} sample_next should pick the largest logit of each row: expected "
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
    got = step.top_k_filter(logits.clone(), k)
    assert got.shape == logits.shape, f"top_k_filter should keep the shape {tuple(logits.shape)}, got {tuple(got.shape)}"
    kept = torch.isfinite(got)
    want_k = min(k, VOCAB)
    counts = kept.sum(dim=-1).tolist()
    removed = torch.ones_like(kept).scatter(-1, logits.topk(want_k, dim=-1).indices, False)  # what must go
    if removed.any() and (got[removed] == 0).all():
        raise AssertionError("the removed logits are 0, which softmax still gives a probability: fill with -inf, "
                             "not 0 (torch.full_like(logits, float('-inf')))")
    if counts == [want_k + 1] * 3:
        raise AssertionError(f"with k={k} every row kept {want_k + 1} tokens, one too many: torch.topk(logits, k)")
    assert counts == [want_k] * 3, (
        f"with k={k} and {VOCAB} tokens each row should keep {want_k}, kept {counts}"
        + (" (k larger than the vocabulary keeps everything)" if k > VOCAB else "")
    )
    top = logits.topk(want_k, dim=-1).indices
    assert kept.gather(-1, top).all(), f"top_k_filter kept the wrong tokens: keep the {want_k} largest logits"
    assert torch.equal(got[kept], logits[kept]), "the kept logits should be unchanged"
    assert (got[~kept] == NEG_INF).all(), "the removed logits should be -inf (probability 0 after softmax)"
    assert raises_value_error(step.top_k_filter, logits, 0), "top_k=0 should raise ValueError"


def test_top_k_keeps_exactly_k_when_logits_tie(step):
    """[1, 2, 2, 2], k=2 -> two of the 2s; [3, 3, 3, 3], k=2 -> any two; [0, 5, 5, 1], k=2 -> both 5s."""
    logits = torch.tensor([[1.0, 2.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0], [0.0, 5.0, 5.0, 1.0]])
    got = step.top_k_filter(logits.clone(), 2)
    counts = torch.isfinite(got).sum(dim=-1).tolist()
    at_least_kth = logits >= logits.topk(2, dim=-1).values[:, -1:]  # every logit tied with the 2nd largest, too
    if any(c > 2 for c in counts) and torch.equal(torch.isfinite(got), at_least_kth):
        raise AssertionError(f"with k=2 the rows [1, 2, 2, 2], [3, 3, 3, 3], [0, 5, 5, 1] kept {counts} tokens: "
                             f"keep exactly k, even with ties (torch.topk's indices, not every logit >= the k-th)")
    assert counts == [2, 2, 2], f"with k=2 each row of tied logits should keep 2 tokens, kept {counts}"
    kept = [sorted(logits[r][torch.isfinite(got[r])].tolist()) for r in range(3)]
    assert kept == [[2.0, 2.0], [3.0, 3.0], [5.0, 5.0]], f"the kept logits should be the 2 largest, got {kept}"


# top-p

def nucleus(probs, p, mistake=None):
    """The tokens top-p keeps, in plain Python; `mistake` gives the tokens one known wrong version keeps.

    Ranked likeliest first (Python's sort is stable, so of tied tokens the first listed goes first); a token is
    kept while the tokens ranked before it add up to less than p.
    """
    ranked = sorted(range(len(probs)), key=lambda i: -probs[i])
    if mistake == "ascending":
        ranked = sorted(range(len(probs)), key=lambda i: probs[i])
    if mistake == "unsorted":
        ranked = list(range(len(probs)))
    kept, mass = [], 0.0
    for i in ranked:
        if mistake == "crossing dropped":
            if mass + probs[i] > p + 1e-12:
                break
        elif mistake == "strict":
            if mass > p + 1e-12:
                break
        elif mass >= p - 1e-12:
            break
        kept.append(i)
        mass += probs[i]
    if mistake == "sorted order":  # the mask made in ranked order, applied to vocabulary order
        kept = [i for i in range(len(kept)) if probs[i] > 0]
    if mistake == "ties kept":
        kept = [i for i in range(len(probs)) if kept and probs[i] >= min(probs[j] for j in kept)]
    return kept


# The known wrong versions of top-p, each with the words that name it.
NUCLEUS_MISTAKES = {
    "strict": "a total that reaches p exactly is enough: a token stays while the tokens before it add up to "
              "less than p (mass_before >= p is dropped)",
    "crossing dropped": "keep the token that crosses p: drop a token when the tokens BEFORE it already reach p "
                        "(cumsum - probs), not when its own running total passes p",
    "sorted order": "the mask is still in sorted order: put the mask back in vocabulary order, "
                    "drop.scatter(-1, order, drop)",
    "unsorted": "the running total was added up in vocabulary order: sort the probabilities before adding them up",
    "ascending": "the least likely tokens were kept: sort in descending order (descending=True)",
    "ties kept": "every token tied with the last one kept was kept too: keep the fewest tokens, even with a tie "
                 "(mask by rank, not by a probability threshold)",
}


def multiset(probs, tokens):
    return sorted(round(probs[i], 9) for i in tokens)


def nucleus_diagnosis(probs, p, got_tokens):
    """The words for the one known mistake that keeps exactly these tokens, or None."""
    got = multiset(probs, got_tokens)
    right = multiset(probs, nucleus(probs, p))
    names = [m for m in NUCLEUS_MISTAKES
             if multiset(probs, nucleus(probs, p, m)) == got != right
             and (m != "sorted order" or sorted(got_tokens) == nucleus(probs, p, m))]
    return NUCLEUS_MISTAKES[names[0]] if len(names) == 1 else None


def assert_nucleus(step, probs, p):
    logits = torch.tensor([probs]).log()
    got_row = step.top_p_filter(logits.clone(), p)[0]
    got = survivors(got_row)
    want = nucleus(probs, p)
    if multiset(probs, got) != multiset(probs, want):
        cause = nucleus_diagnosis(probs, p, got)
        head = f"probs {probs} with p={p} should keep {len(want)} tokens (probabilities {multiset(probs, want)}), " \
               f"kept indices {got}"
        raise AssertionError(f"{cause}\n{head}" if cause else head)
    assert torch.equal(got_row[got], logits[0, got]), "the kept logits should be unchanged"


# probs [0.05, 0.3, 0.5, 0.15] (not sorted on purpose): the likeliest are index 2 (0.5), 1 (0.3), 3 (0.15), 0
@pytest.mark.parametrize("p", [0.3, 0.5, 0.7, 0.8, 0.81, 1.0])
def test_top_p_keeps_the_smallest_set_that_reaches_p(step, p):
    """Sorted: 0.5, 0.3, 0.15, 0.05; running totals 0.5, 0.8, 0.95, 1.0.
    p=0.7: 0.5 < 0.7, 0.5 + 0.3 = 0.8 >= 0.7 -> 2 tokens.  p=0.8: 0.8 reaches 0.8 -> 2.  p=0.81 -> 3.
    p=1.0 -> all 4.  p=0.3 or 0.5: the first token alone reaches p -> 1.
    """
    assert_nucleus(step, [0.05, 0.3, 0.5, 0.15], p)


@pytest.mark.parametrize("p", [0.75, 0.76, 0.6])
def test_top_p_keeps_the_token_that_crosses_p(step, p):
    """probs [0.125, 0.5, 0.125, 0.25], exact in binary. p=0.75: 0.5 + 0.25 = 0.75 reaches p exactly -> 2 tokens
    (indices 1 and 3); p=0.76 needs a third token (either 0.125); p=0.6: 0.5 is not enough, 0.75 crosses 0.6 -> 2."""
    assert_nucleus(step, [0.125, 0.5, 0.125, 0.25], p)


@pytest.mark.parametrize("probs, p", [([0.4, 0.3, 0.3], 0.6), ([0.25, 0.25, 0.25, 0.25], 0.5)],
                         ids=["0.4, 0.3, 0.3", "four of 0.25"])
def test_top_p_keeps_the_fewest_tokens_even_with_ties(step, probs, p):
    """[0.4, 0.3, 0.3], p=0.6: 0.4 < 0.6, 0.4 + 0.3 = 0.7 reaches it -> 0.4 and ONE of the 0.3s.
    Four of 0.25, p=0.5: 0.25 + 0.25 reaches 0.5 -> any two."""
    assert_nucleus(step, probs, p)


def test_top_p_works_row_by_row(step):
    logits = torch.tensor([[0.05, 0.3, 0.5, 0.15], [0.8, 0.1, 0.05, 0.05]]).log()
    got = torch.isfinite(step.top_p_filter(logits.clone(), 0.7))
    want = torch.tensor([[False, True, True, False], [True, False, False, False]])
    assert torch.equal(got, want), (
        f"filter each row on its own (dim=-1): with p=0.7 expected {want.tolist()}, kept {got.tolist()}"
    )
    for bad in (0.0, -0.1, 1.5):
        assert raises_value_error(step.top_p_filter, logits, bad), f"top_p={bad} should raise ValueError"


def test_top_p_of_logits_in_the_thousands(step):
    """Adding 1000 to every logit leaves the probabilities as they are: top-p must keep the same tokens.
    exp(1000) is inf in floating point, which F.softmax never computes (it subtracts the largest logit first)."""
    probs = [0.05, 0.3, 0.5, 0.15]
    logits = torch.tensor([probs]).log() + 1000.0
    got_row = step.top_p_filter(logits.clone(), 0.7)[0]
    got = survivors(got_row)
    small = survivors(step.top_p_filter(logits - 1000.0, 0.7)[0])  # the same logits, near 0
    if got == [0, 1, 2, 3] and small == [1, 2] and not torch.isfinite(logits.exp()).any():
        raise AssertionError("with logits near 1000 top_p_filter kept every token: exp(1000) overflows to inf, "
                             "and inf / inf is nan; take the probabilities with F.softmax")
    assert got == [1, 2], f"probs {probs} as logits near 1000 with p=0.7 should keep indices [1, 2], kept {got}"
    assert torch.equal(got_row[got], logits[0, got]), "the kept logits should be unchanged"


# what every filter keeps: its input, the dtype and the device

FILTERS = {
    "apply_temperature": lambda step, x: step.apply_temperature(x, 0.7),
    "top_k_filter": lambda step, x: step.top_k_filter(x, 3),
    "top_p_filter": lambda step, x: step.top_p_filter(x, 0.6),
    "sample_next": lambda step, x: step.sample_next(x, temperature=0.7, top_k=5, top_p=0.9,
                                                    generator=torch.Generator().manual_seed(0)),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_the_logits_given_are_left_unchanged(step, name):
    logits = distinct_logits(3, VOCAB, seed=4)
    original = logits.clone()
    FILTERS[name](step, logits)
    assert torch.equal(logits, original), (
        f"{name} changed the logits it was given: return a new tensor (logits / t, not logits /= t; "
        f"masked_fill, not masked_fill_)"
    )


@pytest.mark.parametrize("name", ["apply_temperature", "top_k_filter", "top_p_filter"])
def test_filters_keep_the_dtype_and_device_of_the_logits(step, name):
    """float64 logits give float64 logits back; logits on the meta device (shapes only, no data) give logits
    on the meta device: a tensor made without dtype= or device= would land on the CPU, in float32."""
    FILTERS[name](step, distinct_logits(2, VOCAB))  # float32 on the CPU: fine, so any failure below is the dtype's
    for logits, what in [(distinct_logits(2, VOCAB).double(), "float64"),
                         (torch.empty(2, VOCAB, device="meta"), "meta")]:
        try:
            got = FILTERS[name](step, logits)
        except NotImplementedError:
            raise
        except (RuntimeError, TypeError) as error:
            raise AssertionError(
                f"{name} works on float32 logits but fails on {what} logits ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}): make new tensors from the logits, torch.full_like(logits, ...), "
                f"so they take its dtype and device") from error
        assert got.dtype == logits.dtype and got.device == logits.device, (
            f"{name} on {logits.dtype} logits on {logits.device} returned {got.dtype} on {got.device}: make new "
            f"tensors from the logits, torch.full_like(logits, ...), so they take its dtype and device"
        )


# sampling, as a distribution

def oracle(probs, temperature=1.0, top_k=None, top_p=None, mistake=None):
    """The distribution sample_next must draw from, built in plain Python: probabilities q at temperature t
    become q^(1/t), renormalised (that is softmax(log(q) / t)); then top-k, then top-p, each renormalised.
    `mistake` builds the distribution of one known wrong version instead."""
    V = len(probs)

    def temper(w):
        if mistake == "no temperature":
            return w
        power = temperature if mistake == "times temperature" else 1 / temperature
        return normalise([q ** power for q in w])

    def keep_k(w):
        if top_k is None:
            return w
        k = min(V, top_k + (1 if mistake == "k + 1" else 0))
        ranked = sorted(range(V), key=lambda i: -w[i])[:k]
        if mistake == "k ties":
            ranked = [i for i in range(V) if w[i] >= w[ranked[-1]] and w[i] > 0]
        return normalise([w[i] if i in ranked else 0.0 for i in range(V)])

    def keep_p(w):
        if top_p is None:
            return w
        kept = nucleus(w, top_p, mistake if mistake in NUCLEUS_MISTAKES else None)
        return normalise([w[i] if i in kept else 0.0 for i in range(V)])

    w = list(probs)
    if mistake == "temperature last":
        return temper(keep_p(keep_k(w)))
    w = temper(w)
    return keep_k(keep_p(w)) if mistake == "p then k" else keep_p(keep_k(w))


SAMPLING_MISTAKES = {
    "no temperature": "the draws follow the distribution at temperature 1: divide the logits by the temperature, "
                      "before the softmax (dividing the probabilities changes nothing once they are renormalised)",
    "times temperature": "the draws follow the logits times the temperature: divide them by it",
    "temperature last": "the filters saw the logits before the temperature did: divide by the temperature before "
                        "filtering",
    "p then k": "top_p was applied before top_k: top_k first, then top_p (on what top_k left)",
    "k + 1": "top_k kept one too many: torch.topk(logits, k)",
    "k ties": "top_k kept every token tied with the k-th: keep exactly k, even with ties",
    **NUCLEUS_MISTAKES,
}

N_DRAWS = 4000
TOLERANCE = 0.03  # about 4 standard deviations of a frequency from 4000 draws (at most 0.5 / sqrt(4000) = 0.008)

PROBS = [0.2, 0.4, 0.1, 0.3]  # not sorted on purpose
SAMPLING_CASES = {  # settings, probabilities
    "plain": ({}, PROBS),
    "temperature 2": ({"temperature": 2.0}, PROBS),
    "temperature 0.5": ({"temperature": 0.5}, PROBS),
    "top_k 3": ({"top_k": 3}, PROBS),
    "top_k 2 with a tie": ({"top_k": 2}, [0.2, 0.4, 0.2, 0.2]),
    "top_p 0.6": ({"top_p": 0.6}, PROBS),
    "top_p 0.6 with a tie": ({"top_p": 0.6}, [0.3, 0.4, 0.3]),
    "temperature 2, top_p 0.65": ({"temperature": 2.0, "top_p": 0.65}, PROBS),
    "temperature 0.5, top_p 0.8": ({"temperature": 0.5, "top_p": 0.8}, PROBS),
    "temperature 2, top_k 2": ({"temperature": 2.0, "top_k": 2}, PROBS),
    "top_k 3, top_p 0.75": ({"top_k": 3, "top_p": 0.75}, PROBS),
    "temperature 0.5, top_k 3, top_p 0.85": ({"temperature": 0.5, "top_k": 3, "top_p": 0.85}, PROBS),
}


def classes(probs):
    """Tokens of equal probability form one class: which of two tied tokens survives a filter is free, so the
    checks compare the share of each class."""
    groups = {}
    for i, q in enumerate(probs):
        groups.setdefault(round(q, 9), []).append(i)
    return list(groups.values())


def shares(dist, groups):
    return [sum(dist[i] for i in g) for g in groups]


def possible_mistakes(step, probs, temperature=1.0, top_k=None, top_p=None):
    """The known mistakes the learner's own parts allow, tried on this very case: a wrong top_k_filter can
    explain the draws only if it keeps the wrong tokens here; a right one leaves the mistakes of sample_next."""
    tempered = oracle(probs, temperature)
    logits = torch.tensor([tempered]).log()
    mistakes = []
    if temperature != 1.0 and torch.allclose(step.apply_temperature(logits.clone(), temperature),
                                              logits * temperature):
        mistakes.append("times temperature")
    parts_right = True
    if top_k is not None:
        kept = survivors(step.top_k_filter(logits.clone(), top_k)[0])
        want = sorted(range(len(probs)), key=lambda i: -tempered[i])[:top_k]
        if multiset(tempered, kept) != multiset(tempered, want):
            parts_right = False
            mistakes += ["k + 1", "k ties"]
    if top_p is not None:
        before_p = oracle(probs, temperature, top_k)
        kept = survivors(step.top_p_filter(torch.tensor([before_p]).log(), top_p)[0])
        if multiset(before_p, kept) != multiset(before_p, nucleus(before_p, top_p)):
            parts_right = False
            mistakes += list(NUCLEUS_MISTAKES)
    if parts_right:
        mistakes += ["no temperature", "temperature last", "p then k"]
    return mistakes


@pytest.mark.parametrize("case", list(SAMPLING_CASES))
def test_sampled_frequencies_match_the_filtered_distribution(step, case):
    """4000 rows of the same logits, one draw each (one call of sample_next); every class of tied tokens must be
    drawn within 0.03 of its probability, and a filtered-out token never. The distribution is built
    independently in the check (see oracle)."""
    settings, probs = SAMPLING_CASES[case]
    logits = torch.tensor(probs).log().expand(N_DRAWS, len(probs)).contiguous()
    draws = step.sample_next(logits, generator=torch.Generator().manual_seed(0), **settings)
    assert tuple(draws.shape) == (N_DRAWS, 1), (
        f"sample_next should return shape (B, 1) = ({N_DRAWS}, 1), got {tuple(draws.shape)}"
    )
    freq = (torch.bincount(draws.flatten(), minlength=len(probs)).double() / N_DRAWS).tolist()
    groups = classes(probs)
    got = shares(freq, groups)
    want = shares(oracle(probs, **settings), groups)

    def follows(dist):
        return all(abs(f - q) < TOLERANCE and (q > 0 or f == 0) for f, q in zip(got, dist))

    if follows(want):
        return
    seen = [m for m in possible_mistakes(step, probs, **settings)
            if follows(shares(oracle(probs, **settings, mistake=m), groups))]
    named = {SAMPLING_MISTAKES[m] for m in seen}
    where = ", ".join(f"{'tokens ' + str(g) if len(g) > 1 else 'token ' + str(g[0])}: {f:.3f} (expected {q:.3f})"
                      for g, f, q in zip(groups, got, want))
    numbers = f"{case}, probs {probs}: drawn {where}"
    raise AssertionError(f"{named.pop()}\n{numbers}" if len(named) == 1 else numbers)


def test_sampling_draws_from_the_generator_it_is_given(step):
    logits = torch.zeros(50, VOCAB)
    g = torch.Generator().manual_seed(5)
    before, global_before = g.get_state(), torch.get_rng_state()
    a = step.sample_next(logits, generator=g)
    assert not torch.equal(g.get_state(), before), (
        "sample_next never drew from the generator it was given: pass generator= on to torch.multinomial"
    )
    assert torch.equal(torch.get_rng_state(), global_before), (
        "given a generator, sample_next still moved torch's global random numbers: draw from the generator only"
    )
    b = step.sample_next(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b), "two draws with generators seeded alike differ"
    assert len(set(a.flatten().tolist())) > 1, "50 draws from a uniform distribution all gave the same token"
    assert raises_value_error(step.sample_next, logits, temperature=-1.0), "temperature -1 should raise ValueError"


def test_sampling_without_a_generator_follows_the_global_seed(step):
    logits = torch.zeros(50, VOCAB)
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        runs.append(step.sample_next(logits))
    assert torch.equal(runs[0], runs[1]), "after torch.manual_seed(7) twice, sample_next drew different tokens"
    assert not torch.equal(runs[0], runs[2]), (
        "sample_next drew the same 50 tokens after torch.manual_seed(7) and (8): without a generator, draw from "
        "torch's global generator (generator=None)"
    )


# the KV cache

def test_layer_cache_appends_keys_and_values(step):
    B, nh, hs = 2, 3, 4
    cache = step.LayerCache(BLOCK)
    g = torch.Generator().manual_seed(0)
    k1, v1 = torch.randn(B, nh, 2, hs, generator=g), torch.randn(B, nh, 2, hs, generator=g)
    k2, v2 = torch.randn(B, nh, 1, hs, generator=g), torch.randn(B, nh, 1, hs, generator=g)
    k, v = cache.update(k1, v1)
    if cache.length == 0:
        raise AssertionError("after storing 2 tokens the cache's length is still 0: add T to self.length in update")
    if tuple(k.shape) == (B, nh, BLOCK, hs):
        raise AssertionError(f"update returned the whole buffer, {BLOCK} places: return only the filled part, "
                             f"self.k[:, :, :self.length]")
    if cache.length == 2 and cache.k is not None and torch.equal(cache.k[:, :, 2:4], k1):
        raise AssertionError("the first 2 keys were written at places 2 and 3, after self.length had grown: write "
                             "at self.length .. self.length + T first, and only then advance the length")
    if tuple(k.shape) == (B, nh, 2, hs) and torch.equal(k, v1) and torch.equal(v, k1):
        raise AssertionError("update returned the values as keys: store keys with keys and values with values")
    assert tuple(k.shape) == (B, nh, 2, hs) and torch.equal(k, k1) and torch.equal(v, v1), (
        f"the first update of an empty cache should return exactly its own k and v, shape {(B, nh, 2, hs)}; got "
        f"{tuple(k.shape)}"
    )
    assert cache.length == 2, f"after storing 2 tokens the cache's length should be 2, got {cache.length}"
    k, v = cache.update(k2, v2)
    if tuple(k.shape) == (B, nh, 1, hs) and torch.equal(k, k2):
        raise AssertionError("after 2 + 1 tokens update returned only the new key: return the keys of every token "
                             "so far, self.k[:, :, :self.length]")
    if tuple(k.shape) == (B, nh, 3, hs) and torch.equal(k[:, :, :1], k2):
        raise AssertionError("the new key was written at place 0, over the first one: write at self.length .. "
                             "self.length + T")
    assert tuple(k.shape) == (B, nh, 3, hs), (
        f"after 2 + 1 tokens update should return keys of shape (B, nh, 3, hs) = {(B, nh, 3, hs)}, got "
        f"{tuple(k.shape)}"
    )
    assert torch.equal(k, torch.cat((k1, k2), dim=2)) and torch.equal(v, torch.cat((v1, v2), dim=2)), (
        "update should return the 2 keys stored first followed by the new one, along the time axis (dim 2)"
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
        if cache.length == 0:
            raise AssertionError("after a forward of 3 tokens the cache's length is still 0: add T to self.length "
                                 "in update")
        assert cache.length == 3, f"after a forward of 3 tokens the cache's length should be 3, got {cache.length}"
        model(idx[:, 3:4], cache=cache)
        assert cache.length == 4, f"after 3 + 1 tokens the cache's length should be 4, got {cache.length}"
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
        f"with the cache (3 tokens, then one at a time), the logits at positions {bad} differ from a full forward "
        f"by up to {worst.max():.3g}"
    )


def test_next_token_logits_are_those_of_the_last_position(step):
    model = tiny_gpt(step)
    idx = prompt(T=5)
    got = step.next_token_logits(model, idx)
    with torch.no_grad():
        full, _ = model(idx)
    assert tuple(got.shape) == (2, VOCAB), f"next_token_logits should return (B, V) = (2, {VOCAB}), got {tuple(got.shape)}"
    if not torch.allclose(got, full[:, -1], atol=1e-5) and torch.allclose(got, full[:, 0], atol=1e-5):
        raise AssertionError("next_token_logits returned the logits of the first position: take the last position, "
                             "logits[:, -1, :]")
    assert torch.allclose(got, full[:, -1], atol=1e-5), (
        f"next_token_logits of 5 tokens differs from the model's logits at position 4 by up to "
        f"{(got - full[:, -1]).abs().max():.3g}"
    )


# the sampling loop, watched call by call

def watch(step, model, idx, n, use_cache, **settings):
    """Generate while recording every call of the model: (calls, output, error). Each call: the tokens shown,
    the cache given, how many tokens that cache held before and after the call, whether the model was training."""
    calls = []

    def hook(module, args, kwargs):
        cache = kwargs.get("cache", args[2] if len(args) > 2 else None)
        idx = args[0] if args else kwargs["idx"]
        calls.append({"idx": idx.clone(), "cache": cache, "training": module.training,
                      "length": cache.length if cache is not None else None})

    def after(module, args, kwargs, output):
        cache = calls[-1]["cache"]
        calls[-1]["after"] = cache.length if cache is not None else None

    handles = [model.register_forward_pre_hook(hook, with_kwargs=True),
               model.register_forward_hook(after, with_kwargs=True)]
    out = error = None
    try:
        out = step.generate(model, idx, n, use_cache=use_cache, generator=torch.Generator().manual_seed(3), **settings)
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001  (named below, once the calls say why)
        error = e
    finally:
        for handle in handles:
            handle.remove()
    return calls, out, error


def expected_sizes(T, n, use_cache):
    """Tokens shown to the model at each of n calls: with a cache that has room, only the newest; otherwise the
    last block_size of the context (and the cache, reset, holds them)."""
    sizes, length = [], 0
    for i in range(n):
        if use_cache and 0 < length < BLOCK:
            sizes.append(1)
            length += 1
        else:
            sizes.append(min(T + i, BLOCK))
            length = sizes[-1]
    return sizes


def call_problem(calls, idx, out, error, n, use_cache):
    """What the calls show the loop did wrong, in words, or None."""
    T = idx.size(1)
    shown = [c["idx"].size(1) for c in calls]
    if shown and max(shown) > BLOCK:
        return (f"the model was shown {max(shown)} tokens, more than block_size = {BLOCK}: crop the context to its "
                f"last block_size tokens (idx[:, -block_size:])")
    if any(c["training"] for c in calls):
        return "dropout is on while generating (the model was in training mode): generate inside `with eval_mode(model):`"
    caches = [c["cache"] for c in calls]
    if use_cache and caches and all(c is None for c in caches):
        return ("generate never gave the model a cache (use_cache=True): make one KVCache before the loop and pass "
                "it to next_token_logits")
    if use_cache and any(c is None for c in caches):
        i = caches.index(None)
        return f"call {i} of the model was run without the cache: pass cache=cache to the model"
    if use_cache and len({id(c) for c in caches}) > 1:
        return (f"a new cache for every token ({len({id(c) for c in caches})} caches for {n} tokens): make it once, "
                f"before the loop")
    stuck = [i for i, c in enumerate(calls) if c["cache"] is not None and c.get("after") == c["length"]]
    if stuck:
        i = stuck[0]
        return (f"after call {i} of the model, {shown[i]} tokens with the cache, the cache's length did not grow "
                f"from {calls[i]['length']}: add T to self.length in update")
    full = [i for i, c in enumerate(calls) if c["length"] is not None and c["length"] >= BLOCK]
    if full:
        return (f"call {full[0]} of the model was run with a full cache ({BLOCK} of {BLOCK} tokens): once it is "
                f"full, reset it and run the last block_size tokens")
    if out is not None and len(calls) == n and n > 1:
        last = torch.stack([c["idx"][:, -1] for c in calls[1:]], dim=1)  # (B, n - 1)
        drawn = out[:, T:T + n - 1]
        if not torch.equal(last, drawn) and (last == idx[:, -1:]).all():
            return ("every call of the model ended with the prompt's last token: append each new token to idx "
                    "(torch.cat((idx, idx_next), dim=1)) before the next call")
    if error is not None:  # stopped early: the calls so far showed nothing wrong, the error speaks for itself
        return None
    want = expected_sizes(T, n, use_cache)
    if len(calls) != n:
        return f"generate ran the model {len(calls)} times for {n} new tokens, expected once per new token"
    for i, (s, e, c) in enumerate(zip(shown, want, calls)):
        if s != e:
            held = calls[i - 1].get("after") if i > 0 else None
            if use_cache and held is not None and 0 < held < BLOCK and s > 1:
                return (f"call {i} showed the model {s} tokens, but after call {i - 1} the cache held {held} of "
                        f"{BLOCK}: while it has room, run only the newest token, idx[:, -1:], with cache=cache")
            return f"call {i} showed the model {s} tokens (the cache held {c['length']}), expected {e}"
    return None


def assert_calls(calls, idx, out, error, n, use_cache):
    problem = call_problem(calls, idx, out, error, n, use_cache)
    if problem:
        raise AssertionError(problem) from error
    if error is not None:
        raise error


@pytest.mark.parametrize("T", [1, 3], ids=["prompt of 1", "prompt of 3"])
def test_cached_generation_runs_only_the_newest_token_while_the_cache_has_room(step, T):
    """Prompt of 3, block_size 8, 20 tokens: the calls show the model 3, then 1 token five times (the cache
    fills up to 8), then, the cache being full, the last 8 tokens at each call: 3 + 5 + 14 * 8 = 120 in all."""
    model = tiny_gpt(step)
    idx = prompt(T=T)
    calls, out, error = watch(step, model, idx, 20, True, temperature=0.0)
    assert_calls(calls, idx, out, error, 20, True)


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
    calls, out, error = watch(step, model, idx, 14, False, temperature=0.0)
    assert_calls(calls, idx, out, error, 14, False)
    assert tuple(out.shape) == (2, T + 14), f"expected shape (2, {T + 14}), got {tuple(out.shape)}"
    want = idx
    with torch.no_grad():
        for _ in range(14):
            logits, _ = model(want[:, -BLOCK:])
            want = torch.cat((want, logits[:, -1].argmax(dim=-1, keepdim=True)), dim=1)
    differ = (out != want).any(dim=0).nonzero().flatten().tolist()
    assert not differ, (
        f"greedy generation differs from the argmax of the model on the last block_size tokens from position "
        f"{differ[0] if differ else ''} on (prompt of {T}, block_size={BLOCK})"
    )


@pytest.mark.parametrize("T", [3, BLOCK, BLOCK + 4], ids=["short prompt", "prompt of block_size", "long prompt"])
@pytest.mark.parametrize("mode", ["greedy", "sampled"])
def test_cached_and_uncached_generation_give_the_same_tokens(step, mode, T):
    model = tiny_gpt(step)
    settings = {"temperature": 0.0} if mode == "greedy" else {"temperature": 0.9, "top_k": 8, "top_p": 0.95}
    idx = prompt(T=T)
    runs = []
    for use_cache in (False, True):
        calls, out, error = watch(step, model, idx, 20, use_cache, **settings)
        assert_calls(calls, idx, out, error, 20, use_cache)
        runs.append(out)
    differ = (runs[0] != runs[1]).any(dim=0).nonzero().flatten().tolist()
    assert not differ, (
        f"{mode} generation with the cache differs from generation without it from position {differ[0] if differ else ''} "
        f"on (block_size={BLOCK}, prompt of {T})"
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
        "the tokens yielded one by one are not generate's"
    )
    assert torch.equal(step.generate(model, idx, 0), idx), "max_new_tokens=0 should return the prompt as it is"


def test_generation_turns_dropout_off_and_restores_the_mode(step):
    model = tiny_gpt(step, dropout=0.5).train()
    idx = prompt()
    calls, a, error = watch(step, model, idx, 10, True, temperature=0.0)
    assert_calls(calls, idx, a, error, 10, True)
    assert model.training, "a model in training mode came back in eval mode: put back the mode it was in"
    model.eval()
    b = step.generate(model, idx, 10, temperature=0.0)
    assert torch.equal(a, b), (
        "greedy generation gave different tokens for the same prompt, once from the model in training mode, once "
        "in eval mode"
    )
    assert not model.training, "a model in eval mode came back in training mode: put back the mode it was in"


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
