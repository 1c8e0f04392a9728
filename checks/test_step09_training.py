"""Checks for step 9: the training loop.

The models here are tiny GPTs (vocab_size=11, block_size=6, n_embd=12, n_head=3, n_layer=2), so that a whole
training run takes a fraction of a second.
"""

import copy
import math

import numpy as np
import pytest
import torch

VOCAB, BLOCK = 11, 6


def tiny_gpt(step, seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=3, n_embd=12, d_ff=24, dropout=0.0)
    settings.update(overrides)
    return step.GPT(step.GPTConfig(**settings))


def token_data(n, seed=0):
    """n token ids as step 2 makes them: a numpy array of uint16."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=n).astype(np.uint16)


def batch(seed=0, B=4, T=BLOCK):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (B, T), generator=g)
    y = torch.randint(0, VOCAB, (B, T), generator=g)
    return x, y


def set_grads(params, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * scale


def global_norm(tensors):
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors))


# configure_optimizer

def groups_seen(model, optimizer):
    """name -> (p.dim(), its group's weight_decay), and the names listed twice."""
    names = {id(p): name for name, p in model.named_parameters()}
    seen, twice = {}, []
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p), "a tensor that is not the model's")
            if name in seen:
                twice.append(name)
            seen[name] = (p.dim(), group["weight_decay"])
    return seen, twice


def test_optimizer_decays_the_matrices_and_nothing_else(step):
    model = tiny_gpt(step)
    optimizer = step.configure_optimizer(model, lr=1e-3, weight_decay=0.2)
    assert isinstance(optimizer, torch.optim.AdamW), (
        f"configure_optimizer should return a torch.optim.AdamW, got {type(optimizer).__name__}"
    )
    seen, twice = groups_seen(model, optimizer)
    assert not twice, f"{twice[0]} is in two parameter groups: list each parameter exactly once"
    missing = sorted(name for name, _ in model.named_parameters() if name not in seen)
    assert not missing, f"these parameters are in no group, so they would never train: {missing}"
    matrices = {n for n, (dim, _) in seen.items() if dim >= 2}
    vectors = set(seen) - matrices
    decayed_vectors = {n for n in vectors if seen[n][1] != 0.0}
    bare_matrices = {n for n in matrices if seen[n][1] != 0.2}
    if decayed_vectors == vectors and bare_matrices == matrices:
        raise AssertionError("the two groups' weight_decay are swapped: the matrices (p.dim() >= 2) get "
                             "weight_decay, the vectors 0.0")
    if decayed_vectors == vectors and not bare_matrices:
        raise AssertionError("every vector (biases and LayerNorm weights) was decayed too: split by p.dim(); the "
                             "vectors, p.dim() < 2, get weight_decay 0.0")
    if decayed_vectors and not bare_matrices and all(".ln_" in n and n.endswith(".weight") for n in decayed_vectors):
        raise AssertionError(f"the LayerNorm weights were decayed ({sorted(decayed_vectors)[0]}, ...): they are vectors "
                             f"too; split by p.dim(), not by name")
    for name in sorted(decayed_vectors | bare_matrices):
        dim, decay = seen[name]
        raise AssertionError(f"{name} ({dim}-D) is in a group with weight_decay={decay}, expected "
                             f"{0.2 if dim >= 2 else 0.0} (0.2 for p.dim() >= 2, 0.0 for the others)")


def test_frozen_parameters_are_left_out(step):
    model = tiny_gpt(step)
    model.transformer.emb.wpe.weight.requires_grad_(False)
    seen, _ = groups_seen(model, step.configure_optimizer(model, lr=1e-3))
    assert "transformer.emb.wpe.weight" not in seen, (
        "a frozen parameter (requires_grad=False), transformer.emb.wpe.weight, is in the optimizer: keep only the "
        "parameters with p.requires_grad"
    )
    assert len(seen) == len(list(model.parameters())) - 1, "every parameter that is not frozen should be in a group"


def test_optimizer_uses_the_learning_rate_and_betas_given(step):
    model = tiny_gpt(step)
    optimizer = step.configure_optimizer(model, lr=3e-3, weight_decay=0.1, betas=(0.8, 0.9))
    for group in optimizer.param_groups:
        if group["lr"] == 1e-3 or tuple(group["betas"]) == (0.9, 0.999):
            raise AssertionError(f"a group has lr={group['lr']}, betas={tuple(group['betas'])}, AdamW's defaults, "
                                 f"not lr=0.003, betas=(0.8, 0.9): pass lr and betas on, adamw(groups, lr, betas)")
        assert group["lr"] == 3e-3 and tuple(group["betas"]) == (0.8, 0.9), (
            f"a group has lr={group['lr']}, betas={group['betas']}; expected lr=0.003, betas=(0.8, 0.9)"
        )
    optimizer = step.configure_optimizer(model, lr=1e-3)
    decays = sorted(group["weight_decay"] for group in optimizer.param_groups)
    assert decays == [0.0, 0.1], (
        f"with the default weight_decay the groups should have weight_decay 0.1 and 0.0, got {decays}"
    )


# lr_at

def schedule(s, max_lr, warmup, total, min_lr=None, mistake=None):
    """The docstring's schedule, written out in the check; `mistake` gives one known wrong version instead."""
    floor = (0.0 if mistake == "min_lr 0" else max_lr / 10) if min_lr is None else min_lr
    if s < warmup or (mistake == "warm-up one too long" and s == warmup > 0):
        if mistake == "no warm-up":
            return max_lr
        return max_lr * (s if mistake == "warm-up from 0" else s + 1) / warmup
    if s >= total and mistake != "no floor":
        return floor
    progress = (s - warmup) / (total if mistake == "progress over total" else max(1, total - warmup))
    if mistake == "linear":
        return max_lr - progress * (max_lr - floor)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - floor)


SCHEDULE_MISTAKES = {
    "no warm-up": "there is no warm-up: the rate starts at max_lr; rise as max_lr * (step + 1) / warmup_steps",
    "warm-up from 0": "the warm-up starts at 0, so step 0 learns nothing: max_lr * (step + 1) / warmup_steps",
    "warm-up one too long": "at step warmup_steps the rate goes above max_lr: the warm-up is step < warmup_steps",
    "linear": "the decay is a straight line, not a cosine: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr)",
    "min_lr 0": "the rate decays to 0: min_lr defaults to max_lr / 10",
    "progress over total": "progress must run from 0 to 1 over the decay alone: divide by total_steps - warmup_steps",
    "no floor": "the rate rises again after total_steps: from total_steps on it stays at min_lr",
}
SCHEDULES = [(1.0, 4, 14), (6e-4, 10, 110), (2.0, 0, 20)]  # (max_lr, warmup_steps, total_steps)


def schedule_mistake(step, min_lr=None):
    """The one known mistake whose whole schedule is the learner's, on three schedules, or None."""
    def curve(fn):
        return [fn(s, *c, min_lr) for c in SCHEDULES for s in range(c[2] + 12)]

    try:
        mine = curve(step.lr_at)
    except ArithmeticError:
        return None
    def same(a, b):
        return all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12) for u, v in zip(a, b))

    right = curve(schedule)
    named = [m for m in SCHEDULE_MISTAKES
             if same(mine, wrong := curve(lambda s, *c, m=m: schedule(s, *c, mistake=m))) and not same(wrong, right)]
    return SCHEDULE_MISTAKES[named[0]] if len(named) == 1 else None


def assert_schedule(step, max_lr, warmup, total, points, min_lr=None):
    for s in points:
        got = step.lr_at(s, max_lr, warmup, total, min_lr)
        want = schedule(s, max_lr, warmup, total, min_lr)
        assert isinstance(got, float), f"lr_at should return a float, got {type(got).__name__}"
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            cause = schedule_mistake(step, min_lr)
            numbers = (f"lr_at({s}, max_lr={max_lr}, warmup_steps={warmup}, total_steps={total}, min_lr={min_lr}) "
                       f"should be {want:.6g}, got {got:.6g}")
            raise AssertionError(f"{cause}\n{numbers}" if cause else numbers)


def test_the_schedule_of_the_docstring_example(step):
    """max_lr=1, warmup_steps=4, total_steps=14 (min_lr = 0.1):
    step 0 -> 1 * 1/4 = 0.25, step 3 -> 4/4 = 1.0, step 4 -> progress 0 -> 1.0,
    step 9 -> progress 5/10 -> 0.1 + 0.5 * (1 + cos(pi/2)) * 0.9 = 0.55,
    step 13 -> progress 0.9 -> 0.1 + 0.5 * (1 + cos(0.9 pi)) * 0.9 = 0.12202, step 14 -> 0.1
    """
    expected = {0: 0.25, 1: 0.5, 3: 1.0, 4: 1.0, 9: 0.55, 13: 0.12202456766718092, 14: 0.1, 40: 0.1}
    for s, want in expected.items():
        assert math.isclose(schedule(s, 1.0, 4, 14), want, rel_tol=1e-9)  # the check's own arithmetic
    assert_schedule(step, 1.0, 4, 14, list(expected))


def test_warm_up_rises_linearly_to_max_lr(step):
    max_lr, warmup, total = 6e-4, 10, 100
    assert_schedule(step, max_lr, warmup, total, range(warmup + 1))


@pytest.mark.parametrize("min_lr", [None, 0.0, 2e-5], ids=["min_lr default", "min_lr=0", "min_lr=2e-5"])
def test_decay_follows_a_cosine_down_to_min_lr(step, min_lr):
    """warmup 10, total 110: half way through the decay (step 60) cos(pi / 2) = 0, so the rate is half way
    between max_lr and min_lr; a quarter of the way (step 35) it is min_lr + 0.5 * (1 + cos(pi / 4)) * (max_lr - min_lr)."""
    assert_schedule(step, 6e-4, 10, 110, [10, 35, 60, 85, 109, 110, 111, 130], min_lr)


def test_the_schedule_at_its_boundaries(step):
    """warmup 4, total 14: steps 3, 4, 5 (the end of the warm-up) and 13, 14, 15 (the end of the decay)."""
    assert_schedule(step, 1.0, 4, 14, [3, 4, 5, 13, 14, 15])


def test_no_warm_up_starts_at_max_lr(step):
    assert_schedule(step, 1e-3, 0, 50, [0, 1, 49, 50])


# clip_grad_norm

def clip_mistake(before, after, returned, max_norm):
    """The words for the one known clipping mistake these gradients and this returned norm show, or None."""
    total = global_norm(before)
    norms = [global_norm([g]) for g in before]

    def scaled(factors):
        return all(torch.allclose(a.double(), b.double() * f, rtol=1e-5, atol=1e-9)
                   for a, b, f in zip(after, before, factors))

    if isinstance(returned, torch.Tensor):
        return "clip_grad_norm returned a tensor: return the norm as a float, norm.item()"
    if math.isclose(returned, total ** 2, rel_tol=1e-4) and abs(total - 1) > 0.01:
        return "the returned norm is the sum of squares, without the square root"
    if math.isclose(returned, sum(norms), rel_tol=1e-4) and len(before) > 1:
        return ("the tensors' norms were added up: the global norm is sqrt(sum of all squares), "
                "not the sum of the norms")
    if max(norms) > max_norm and scaled([min(1.0, max_norm / n) for n in norms]):
        return "each tensor was clipped on its own: one factor, max_norm / (global norm), for all of them"
    if max(norms) > max_norm and scaled([1.0] * len(before)):  # (each tensor clipped alone would change too)
        return "the gradients themselves were not changed: scale them in place, g.mul_(max_norm / norm)"
    if total < max_norm and scaled([max_norm / total] * len(before)):
        return "small gradients were scaled up: only scale when norm > max_norm"
    if total > max_norm and math.isclose(returned, max_norm, rel_tol=1e-4):
        return "returned the norm after clipping: return the norm measured before"
    return None


def assert_clipping(params, before, returned, max_norm):
    after = [p.grad for p in params]
    total = global_norm(before)
    want = [b * (max_norm / total) if total > max_norm else b for b in before]
    right_norm = isinstance(returned, float) and math.isclose(returned, total, rel_tol=1e-5)
    right_grads = all(torch.allclose(a.double(), w.double(), rtol=1e-5, atol=1e-8) for a, w in zip(after, want))
    if right_norm and right_grads:
        return
    cause = clip_mistake(before, after, returned, max_norm)
    numbers = (f"clip_grad_norm(max_norm={max_norm}) on gradients of global norm {total:.5g}: returned {returned!r} "
               f"(expected {total:.5g}); global norm afterwards {global_norm(after):.5g} (expected "
               f"{min(total, max_norm):.5g})")
    raise AssertionError(f"{cause}\n{numbers}" if cause else numbers)


def test_clipping_the_docstring_example(step):
    """grads [3, 0] and [0, 4]: global norm sqrt(9 + 16) = 5; max_norm = 1 -> both scaled by 1/5."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    before = [a.grad.clone(), b.grad.clone()]
    assert_clipping([a, b], before, step.clip_grad_norm([a, b], 1.0), 1.0)


def test_clipping_bounds_the_global_norm_and_keeps_the_direction(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, scale=3.0)
    before = [p.grad.clone() for p in params]
    norm = step.clip_grad_norm((p for p in params), 0.5)  # a generator, as model.parameters() is
    assert_clipping(params, before, norm, 0.5)


def test_clipping_matches_pytorch(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, seed=1, scale=2.0)
    twins = [torch.zeros_like(p, requires_grad=True) for p in params]
    for twin, p in zip(twins, params):
        twin.grad = p.grad.clone()
    before = [p.grad.clone() for p in params]
    norm = step.clip_grad_norm(params, 1.0)
    torch.nn.utils.clip_grad_norm_(twins, 1.0)
    assert_clipping(params, before, norm, 1.0)  # the check's own arithmetic, then PyTorch's
    for (name, p), twin in zip(model.named_parameters(), twins):
        assert torch.allclose(p.grad, twin.grad, rtol=1e-5, atol=1e-7), (
            f"{name}'s clipped gradient differs from torch.nn.utils.clip_grad_norm_'s"
        )


def test_small_gradients_are_left_unchanged(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, seed=2, scale=0.01)
    before = [p.grad.clone() for p in params]
    assert_clipping(params, before, step.clip_grad_norm(params, 1.0), 1.0)


def test_clipping_at_exactly_max_norm_changes_nothing(step):
    """grads [3, 0] and [0, 4] have norm 5: max_norm=5 leaves them as they are, max_norm=4.9 scales by 4.9/5."""
    for max_norm in (5.0, 4.9, 5.1):
        a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
        a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
        before = [a.grad.clone(), b.grad.clone()]
        assert_clipping([a, b], before, step.clip_grad_norm([a, b], max_norm), max_norm)


# perplexity

@pytest.mark.parametrize("loss, want", [(math.log(4), 4.0), (0.0, 1.0), (math.log(11), 11.0), (2.5, math.exp(2.5))],
                         ids=["ln 4 -> 4", "0 -> 1", "ln 11 -> 11", "2.5"])
def test_perplexity_is_exp_of_the_mean_loss(step, loss, want):
    """A uniform guess over 4 tokens: loss ln(4) = 1.386, perplexity e^1.386 = 4 (it hesitates between 4)."""
    got = step.perplexity(loss)
    if loss > 0 and math.isclose(got, 2 ** loss, rel_tol=1e-9):
        raise AssertionError(f"perplexity({loss:.4f}) gave 2 ** {loss:.4f} = {got:.4f}, the perplexity in bits; "
                             f"cross-entropy is in nats: math.exp")
    assert math.isclose(got, want, rel_tol=1e-9), f"perplexity({loss:.4f}) should be exp({loss:.4f}) = {want:.4f}, got {got}"


def test_a_uniform_model_has_perplexity_vocab_size(step):
    model = tiny_gpt(step)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every logit 0: a uniform guess over the 11 tokens
    _, loss = model(*batch())
    got = step.perplexity(loss.item())
    assert math.isclose(got, VOCAB, rel_tol=1e-5), (
        f"a model that gives every one of {VOCAB} tokens the same probability has perplexity {VOCAB}, got {got:.4f}"
    )


# train_step

def clipping_works(step):
    """Whether the learner's clip_grad_norm clips the docstring's example in place: then train_step is to blame."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    step.clip_grad_norm([a, b], 1.0)
    return torch.allclose(a.grad, torch.tensor([0.6, 0.0])) and torch.allclose(b.grad, torch.tensor([0.0, 0.8]))


def test_train_step_clips_before_the_optimizer_step(step):
    """SGD with lr=1 moves the weights by exactly -grad: with max_norm=0.001 the move must be 0.001 long."""
    model = tiny_gpt(step)
    twin = copy.deepcopy(model)
    x, y = batch()
    unclipped = global_norm(torch.autograd.grad(twin(x, y)[1], list(twin.parameters())))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step.train_step(model, optimizer, x, y, max_norm=1e-3)
    moved = global_norm([p.detach() - b for p, b in zip(model.parameters(), before)])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    left = global_norm(grads) if grads else 0.0
    if moved == 0:
        if not grads or left == 0:
            raise AssertionError("the weights did not move and no gradient is left: the gradients were wiped before "
                                 "optimizer.step() (zero_grad first, then backward, clip, step)")
        raise AssertionError("the weights did not move, though the gradients are there: call optimizer.step()")
    if math.isclose(moved, unclipped, rel_tol=1e-3) and left <= 1e-3 * (1 + 1e-3):
        raise AssertionError(f"the update was {moved:.3g} long, the unclipped gradient's length, and the gradients "
                             f"were clipped afterwards: clip after loss.backward() and before optimizer.step()")
    if math.isclose(moved, unclipped, rel_tol=1e-3) and math.isclose(left, unclipped, rel_tol=1e-3) \
            and clipping_works(step):
        raise AssertionError(f"the gradients were never clipped (the update was {moved:.3g} long): call "
                             f"clip_grad_norm(model.parameters(), max_norm) between backward() and step()")
    assert moved <= 1e-3 * (1 + 1e-3), (
        f"with SGD (lr=1) and max_norm=0.001 the update should be 0.001 long, it was {moved:.3g} (the unclipped "
        f"gradient is {unclipped:.3g} long)"
    )


def test_train_step_starts_from_fresh_gradients(step):
    """Two steps of train_step must equal two steps of SGD written out by hand."""
    model = tiny_gpt(step)
    twin, piled = copy.deepcopy(model), copy.deepcopy(model)
    batches = [batch(1), batch(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for x, y in batches:
        step.train_step(model, optimizer, x, y, max_norm=1e9)
    total = None
    for x, y in batches:
        grads = torch.autograd.grad(twin(x, y)[1], list(twin.parameters()))
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads):
                p -= 0.5 * g
        mine = torch.autograd.grad(piled(x, y)[1], list(piled.parameters()))
        total = mine if total is None else [t + g for t, g in zip(total, mine)]
        with torch.no_grad():
            for p, g in zip(piled.parameters(), total):
                p -= 0.5 * g
    if all(torch.allclose(p, q, atol=1e-6) for p, q in zip(model.parameters(), piled.parameters())):
        raise AssertionError("the second step used the first step's gradients too: they piled up in .grad, since "
                             "backward() adds to it; call optimizer.zero_grad() at the start of every step")
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (
            f"after two steps of train_step (SGD, lr=0.5) {name} differs from SGD by hand by up to "
            f"{(p - q).abs().max():.3g}"
        )


def test_train_step_returns_the_loss_before_the_update(step):
    model = tiny_gpt(step)
    x, y = batch(3)
    with torch.no_grad():
        want = model(x, y)[1].item()
    got = step.train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    if isinstance(got, torch.Tensor):
        raise AssertionError("train_step returned a tensor: return loss.item(), a float")
    assert isinstance(got, float), f"train_step should return the loss as a float, got {type(got).__name__}"
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"train_step returned {got:.5f}, but the loss on this batch before the update was {want:.5f}"
    )


def test_one_step_moves_every_parameter(step):
    """A batch of 1, with x and y sliced from one tensor (idx[:, :-1], idx[:, 1:]: not contiguous), through the
    course's own optimizer: afterwards every parameter has moved and is still trainable."""
    model = tiny_gpt(step)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    idx = torch.randint(0, VOCAB, (1, BLOCK + 1), generator=torch.Generator().manual_seed(5))
    loss = step.train_step(model, step.configure_optimizer(model, lr=1e-2), idx[:, :-1], idx[:, 1:])
    assert math.isfinite(loss), f"train_step on a batch of 1 returned the loss {loss}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert not frozen, f"after train_step these parameters no longer require gradients: {frozen}"
    still = [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[n])]
    assert not still, f"after one step with configure_optimizer's AdamW these parameters did not move: {still}"


def test_one_tiny_batch_is_overfitted(step):
    """A model that can memorise one batch: the loss must fall from ln(11) = 2.40 to below 0.5."""
    model = tiny_gpt(step, n_embd=24, n_head=4, d_ff=48)
    optimizer = step.configure_optimizer(model, lr=2e-2, weight_decay=0.0)
    x, y = batch(4, B=4, T=BLOCK)
    losses = [step.train_step(model, optimizer, x, y) for _ in range(60)]
    assert losses[0] > 2.0, f"the first loss should be near ln(11) = 2.40, got {losses[0]:.3f}"
    assert min(losses) < 0.5, (
        f"one batch was not memorised: after 60 steps the loss is {losses[-1]:.3f} (lowest {min(losses):.3f}), "
        f"expected below 0.5"
    )


# evaluate

def test_evaluate_is_the_mean_loss_over_the_batches(step):
    model = tiny_gpt(step)
    data = token_data(200)
    g = torch.Generator().manual_seed(7)
    got = step.evaluate(model, data, BLOCK, 4, 5, generator=g)
    assert not torch.equal(g.get_state(), torch.Generator().manual_seed(7).get_state()), (
        "evaluate never drew its batches from the generator it was given: get_batch(..., generator=generator)"
    )
    mine = torch.Generator().manual_seed(7)
    with torch.no_grad():
        losses = [model(*step.get_batch(data, BLOCK, 4, generator=mine))[1].item() for _ in range(5)]
    want = sum(losses) / len(losses)
    assert isinstance(got, float), f"evaluate should return a float, got {type(got).__name__}"
    if math.isclose(got, sum(losses), rel_tol=1e-5):
        raise AssertionError(f"evaluate returned {got:.5f}, the sum of the losses of the 5 batches: divide by n_batches")
    if math.isclose(got, losses[-1], rel_tol=1e-5):
        raise AssertionError(f"evaluate returned {got:.5f}, only the last batch's loss: add every batch's loss up, "
                             f"then divide by n_batches")
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"the mean loss of the 5 batches is {want:.5f} (losses {[round(v, 5) for v in losses]}), evaluate returned "
        f"{got:.5f}"
    )


def test_evaluate_turns_dropout_off_and_restores_the_mode(step):
    model = tiny_gpt(step, dropout=0.5)
    data = token_data(200)
    modes = []
    handle = model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    try:
        model.train()
        step.evaluate(model, data, BLOCK, 4, 3, generator=torch.Generator().manual_seed(1))
        assert modes and not any(modes), (
            "the model was evaluated in training mode, dropout on: call model.eval() before measuring"
        )
        assert model.training, "a model in training mode came back in eval mode: restore the mode it had"
        model.eval()
        step.evaluate(model, data, BLOCK, 4, 1, generator=torch.Generator().manual_seed(1))
        assert not model.training, (
            "a model in eval mode came back in training mode: restore the mode it had, model.train(was_training)"
        )
    finally:
        handle.remove()


# steps_per_epoch

@pytest.mark.parametrize("n_tokens, batch_size, block_size, want",
                         [(10_000, 16, 64, 9), (2048, 16, 64, 2), (2047, 16, 64, 1), (100, 16, 64, 1), (6, 2, 3, 1),
                          (7, 1, 1, 7)])
def test_steps_per_epoch_reads_the_tokens_about_once(step, n_tokens, batch_size, block_size, want):
    got = step.steps_per_epoch(n_tokens, batch_size, block_size)
    if got == 0:
        raise AssertionError(f"steps_per_epoch({n_tokens}, batch_size={batch_size}, block_size={block_size}) is 0: "
                             f"a text shorter than one batch still gets one step, at least 1")
    if want != n_tokens // batch_size and got == n_tokens // batch_size:
        raise AssertionError(f"steps_per_epoch({n_tokens}, {batch_size}, {block_size}) gave {got} = n_tokens // "
                             f"batch_size: the tokens in one batch are batch_size * block_size")
    assert got == want, (
        f"steps_per_epoch({n_tokens}, batch_size={batch_size}, block_size={block_size}) should be {want}, got {got}"
    )


# train

def run(step, seed=3, epochs=2, dropout=0.1, model_seed=0, start_epoch=0, optimizer=None, model=None):
    model = model if model is not None else tiny_gpt(step, seed=model_seed, dropout=dropout)
    config = step.TrainConfig(epochs=epochs, batch_size=4, lr=3e-3, eval_batches=2, seed=seed)
    events = []
    history = step.train(model, token_data(150), token_data(60, seed=1), config, callback=events.append,
                         start_epoch=start_epoch, optimizer=optimizer)
    return history, events


def step_losses(events):
    return [e["loss"] for e in events if e["kind"] == "step"]


def test_training_repeats_exactly_with_the_same_seed(step):
    _, a = run(step, seed=3)
    _, b = run(step, seed=3)
    assert step_losses(a) and step_losses(a) == step_losses(b), (
        "two runs with the same seed gave different losses: all randomness (batches, dropout) must come from "
        "seeded generators"
    )
    _, c = run(step, seed=4)
    assert step_losses(a) != step_losses(c), "runs with different seeds gave the same losses: use config.seed"


def test_training_reports_every_step_and_every_epoch(step):
    history, events = run(step, epochs=3)
    per_epoch = step.steps_per_epoch(150, 4, BLOCK)
    steps = [e for e in events if e["kind"] == "step"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert len(steps) == 3 * per_epoch and len(epochs) == 3, (
        f"3 epochs of {per_epoch} steps should give {3 * per_epoch} step events and 3 epoch events, got "
        f"{len(steps)} and {len(epochs)}"
    )
    assert [e["step"] for e in steps[:per_epoch]] == list(range(1, per_epoch + 1)), (
        "a step event's 'step' counts the steps of its epoch, from 1 to steps_per_epoch"
    )
    assert history == epochs, "train should return the list of its epoch events"
    for e in epochs:
        mine = [s["loss"] for s in steps if s["epoch"] == e["epoch"]]
        assert math.isclose(e["train_loss"], sum(mine) / len(mine), rel_tol=1e-9), (
            "an epoch's train_loss should be the mean of its steps' losses"
        )
        assert math.isclose(e["val_ppl"], math.exp(e["val_loss"]), rel_tol=1e-9), "val_ppl should be exp(val_loss)"
    assert steps[-1]["loss"] < steps[0]["loss"], (
        f"the loss did not go down in 3 epochs ({steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f})"
    )


def test_training_resumes_from_start_epoch(step):
    history, events = run(step, epochs=3, start_epoch=2)
    assert [e["epoch"] for e in history] == [2], (
        f"with start_epoch=2 and epochs=3 only epoch 2 should run, got epochs {[e['epoch'] for e in history]}"
    )


def test_an_exception_in_the_callback_stops_training(step):
    model = tiny_gpt(step)
    config = step.TrainConfig(epochs=50, batch_size=4, eval_batches=1)
    calls = []

    def interrupt(event):
        calls.append(event)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        step.train(model, token_data(150), token_data(60), config, callback=interrupt)
    assert len(calls) == 3, f"training went on after the callback raised ({len(calls)} events)"
