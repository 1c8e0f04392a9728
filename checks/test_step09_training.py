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

def test_optimizer_decays_the_matrices_and_nothing_else(step):
    model = tiny_gpt(step)
    optimizer = step.configure_optimizer(model, lr=1e-3, weight_decay=0.2)
    assert isinstance(optimizer, torch.optim.AdamW), (
        f"configure_optimizer should return a torch.optim.AdamW, got {type(optimizer).__name__}"
    )
    names = {id(p): name for name, p in model.named_parameters()}
    seen = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p), "a tensor that is not the model's")
            assert id(p) not in seen, f"{name} is in two parameter groups: list each parameter exactly once"
            seen[id(p)] = (name, p.dim(), group["weight_decay"])
    missing = sorted(name for i, name in names.items() if i not in seen)
    assert not missing, f"these parameters are in no group, so they would never train: {missing}"
    for name, dim, decay in seen.values():
        want = 0.2 if dim >= 2 else 0.0
        kind = "a matrix (dim >= 2)" if dim >= 2 else "a vector (bias or LayerNorm weight)"
        assert decay == want, (
            f"{name} is {kind} but its group has weight_decay={decay}: decay only the parameters with "
            f"p.dim() >= 2, with weight_decay={want}"
        )


def test_optimizer_uses_the_learning_rate_and_betas_given(step):
    model = tiny_gpt(step)
    optimizer = step.configure_optimizer(model, lr=3e-3, weight_decay=0.1, betas=(0.8, 0.9))
    for group in optimizer.param_groups:
        assert group["lr"] == 3e-3 and tuple(group["betas"]) == (0.8, 0.9), (
            f"a group has lr={group['lr']}, betas={group['betas']}: pass lr and betas on to adamw(groups, lr, betas)"
        )
    optimizer = step.configure_optimizer(model, lr=1e-3)
    decays = sorted(group["weight_decay"] for group in optimizer.param_groups)
    assert decays == [0.0, 0.1], (
        f"with the default weight_decay the groups should have weight_decay 0.1 and 0.0, got {decays}"
    )


# lr_at

def test_the_schedule_of_the_docstring_example(step):
    """max_lr=1, warmup_steps=4, total_steps=14 (min_lr = 0.1):
    step 0 -> 1 * 1/4 = 0.25, step 3 -> 4/4 = 1.0, step 4 -> progress 0 -> 1.0,
    step 9 -> progress 5/10 -> 0.1 + 0.5 * (1 + cos(pi/2)) * 0.9 = 0.55,
    step 13 -> progress 0.9 -> 0.1 + 0.5 * (1 + cos(0.9 pi)) * 0.9 = 0.12202, step 14 -> 0.1
    """
    expected = {0: 0.25, 1: 0.5, 3: 1.0, 4: 1.0, 9: 0.55, 13: 0.12202456766718092, 14: 0.1, 40: 0.1}
    for s, want in expected.items():
        got = step.lr_at(s, 1.0, 4, 14)
        assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
            f"lr_at({s}, max_lr=1, warmup_steps=4, total_steps=14) should be {want:.5f}, got {got!r}: "
            f"{'warm-up is max_lr * (step + 1) / warmup_steps' if s < 4 else 'check the cosine and min_lr = max_lr / 10'}"
        )


def test_warm_up_rises_linearly_to_max_lr(step):
    max_lr, warmup, total = 6e-4, 10, 100
    rates = [step.lr_at(s, max_lr, warmup, total) for s in range(warmup + 1)]
    assert 0 < rates[0] <= max_lr / warmup * 1.000001, (
        f"the warm-up should start small: lr_at(0) = {rates[0]:.3g}, expected max_lr / warmup_steps = "
        f"{max_lr / warmup:.3g}"
    )
    steps = [b - a for a, b in zip(rates, rates[1:warmup])]
    assert all(math.isclose(d, steps[0], rel_tol=1e-6) and d > 0 for d in steps), (
        f"the warm-up should rise by the same amount at every step (linearly); the increments are "
        f"{[f'{d:.3g}' for d in steps]}"
    )
    assert math.isclose(rates[warmup], max_lr, rel_tol=1e-9), (
        f"at the end of the warm-up the rate should be max_lr = {max_lr}, got lr_at({warmup}) = {rates[warmup]}"
    )


@pytest.mark.parametrize("min_lr", [None, 0.0, 2e-5], ids=["min_lr default", "min_lr=0", "min_lr=2e-5"])
def test_decay_follows_a_cosine_down_to_min_lr(step, min_lr):
    max_lr, warmup, total = 6e-4, 10, 110
    floor = max_lr / 10 if min_lr is None else min_lr
    rates = [step.lr_at(s, max_lr, warmup, total, min_lr) for s in range(total + 20)]
    assert all(0 <= r <= max_lr * (1 + 1e-9) for r in rates), (
        f"the learning rate must stay between 0 and max_lr; got values from {min(rates):.3g} to {max(rates):.3g}"
    )
    decay = rates[warmup:total + 1]
    assert all(b <= a + 1e-15 for a, b in zip(decay, decay[1:])), (
        "after the warm-up the learning rate should only go down"
    )
    half = floor + 0.5 * (max_lr - floor)  # cos(pi / 2) = 0 half way through the decay
    quarter = floor + 0.5 * (1 + math.cos(math.pi / 4)) * (max_lr - floor)
    for s, want, where in [(warmup + 50, half, "half way"), (warmup + 25, quarter, "a quarter of the way")]:
        assert math.isclose(rates[s], want, rel_tol=1e-6, abs_tol=1e-12), (
            f"{where} through the decay the rate should be {want:.4g} (cosine), got {rates[s]:.4g}: "
            f"min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr)"
        )
    assert all(math.isclose(r, floor, abs_tol=1e-15) for r in rates[total:]), (
        f"from total_steps on the rate should stay at min_lr = {floor:.3g} "
        f"(max_lr / 10 when min_lr is None), got {rates[total]:.3g}"
    )


def test_no_warm_up_starts_at_max_lr(step):
    got = step.lr_at(0, 1e-3, 0, 50)
    assert math.isclose(got, 1e-3), f"with warmup_steps=0, step 0 should get max_lr = 0.001, got {got}"


# clip_grad_norm

def test_clipping_the_docstring_example(step):
    """grads [3, 0] and [0, 4]: global norm sqrt(9 + 16) = 5; max_norm = 1 -> both scaled by 1/5."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    norm = step.clip_grad_norm([a, b], 1.0)
    assert isinstance(norm, float) and math.isclose(norm, 5.0, rel_tol=1e-6), (
        f"clip_grad_norm should return the global norm before clipping, sqrt(3^2 + 4^2) = 5.0, as a float; "
        f"got {norm!r}"
    )
    got = [a.grad.tolist(), b.grad.tolist()]
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.0])) and torch.allclose(b.grad, torch.tensor([0.0, 0.8])), (
        f"clip the global norm (all tensors together), not each tensor on its own: [3, 0] and [0, 4] should "
        f"become [0.6, 0] and [0, 0.8]\ngot {got}"
    )


def test_clipping_bounds_the_global_norm_and_keeps_the_direction(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, scale=3.0)
    before = [p.grad.clone() for p in params]
    step.clip_grad_norm((p for p in params), 0.5)  # a generator, as model.parameters() is
    after = [p.grad for p in params]
    norm = global_norm(after)
    assert norm <= 0.5 * (1 + 1e-5), (
        f"after clipping to max_norm=0.5 the global norm is {norm:.4f}: scale all gradients together, in place, "
        f"by max_norm / (one norm for all tensors)"
    )
    assert norm >= 0.5 * (1 - 1e-4), f"the gradients were shrunk too much: global norm {norm:.4f}, expected 0.5"
    factor = (after[0].double() / before[0].double()).mean().item()
    for (name, _), b, a in zip(model.named_parameters(), before, after):
        assert torch.allclose(a.double(), b.double() * factor, rtol=1e-5, atol=1e-8), (
            f"{name}'s gradient was scaled by a different factor than the others: multiply every gradient by "
            f"the same max_norm / norm, so the step keeps its direction"
        )


def test_clipping_matches_pytorch(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, seed=1, scale=2.0)
    twins = [torch.zeros_like(p, requires_grad=True) for p in params]
    for twin, p in zip(twins, params):
        twin.grad = p.grad.clone()
    norm = step.clip_grad_norm(params, 1.0)
    want = torch.nn.utils.clip_grad_norm_(twins, 1.0).item()
    assert math.isclose(norm, want, rel_tol=1e-5), (
        f"clip_grad_norm returned {norm:.6g}, torch.nn.utils.clip_grad_norm_ {want:.6g}: return the global L2 "
        f"norm of all gradients, before clipping"
    )
    for (name, p), twin in zip(model.named_parameters(), twins):
        assert torch.allclose(p.grad, twin.grad, rtol=1e-5, atol=1e-7), (
            f"{name}'s clipped gradient differs from torch.nn.utils.clip_grad_norm_'s"
        )


def test_small_gradients_are_left_unchanged(step):
    model = tiny_gpt(step)
    params = list(model.parameters())
    set_grads(params, seed=2, scale=0.01)
    before = [p.grad.clone() for p in params]
    norm = step.clip_grad_norm(params, 1.0)
    assert math.isclose(norm, global_norm(before), rel_tol=1e-5), (
        f"clip_grad_norm should return the global norm ({global_norm(before):.5g}) even when it does not clip; "
        f"got {norm}"
    )
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before)), (
        "gradients whose global norm is below max_norm were changed: only scale when norm > max_norm"
    )


# perplexity

@pytest.mark.parametrize("loss, want", [(math.log(4), 4.0), (0.0, 1.0), (math.log(11), 11.0), (2.5, math.exp(2.5))],
                         ids=["ln 4 -> 4", "0 -> 1", "ln 11 -> 11", "2.5"])
def test_perplexity_is_exp_of_the_mean_loss(step, loss, want):
    """A uniform guess over 4 tokens: loss ln(4) = 1.386, perplexity e^1.386 = 4 (it hesitates between 4)."""
    got = step.perplexity(loss)
    assert math.isclose(got, want, rel_tol=1e-9), (
        f"perplexity({loss:.4f}) should be exp({loss:.4f}) = {want:.4f}, got {got}: use the natural exponential, "
        f"math.exp, since cross-entropy is in nats"
    )


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

def test_train_step_clips_before_the_optimizer_step(step):
    model = tiny_gpt(step)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is exactly -grad
    step.train_step(model, optimizer, *batch(), max_norm=1e-3)
    moved = global_norm([p.detach() - b for p, b in zip(model.parameters(), before)])
    assert moved > 0, "train_step did not change the weights: call optimizer.step() after backward()"
    assert moved <= 1e-3 * (1 + 1e-3), (
        f"clip after loss.backward() and before optimizer.step(): with SGD (lr=1) and max_norm=0.001 the update "
        f"was {moved:.3g} long"
    )


def test_train_step_starts_from_fresh_gradients(step):
    """Two steps of train_step must equal two steps of SGD written out by hand."""
    model = tiny_gpt(step)
    twin = copy.deepcopy(model)
    batches = [batch(1), batch(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for x, y in batches:
        step.train_step(model, optimizer, x, y, max_norm=1e9)
    for x, y in batches:
        grads = torch.autograd.grad(twin(x, y)[1], list(twin.parameters()))
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads):
                p -= 0.5 * g
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (
            f"call optimizer.zero_grad() at the start of every step: after two steps {name} differs from SGD by "
            f"hand\nbackward() adds into .grad, so the first step's gradients were added to the second's"
        )


def test_train_step_returns_the_loss_before_the_update(step):
    model = tiny_gpt(step)
    x, y = batch(3)
    with torch.no_grad():
        want = model(x, y)[1].item()
    got = step.train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert isinstance(got, float), f"train_step should return the loss as a float (loss.item()), got {type(got).__name__}"
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"train_step returned {got:.5f}, but the loss on this batch before the update was {want:.5f}: return the "
        f"loss computed in this step"
    )


def test_one_tiny_batch_is_overfitted(step):
    """A model that can memorise one batch: the loss must fall from ln(11) = 2.40 to below 0.5."""
    model = tiny_gpt(step, n_embd=24, n_head=4, d_ff=48)
    optimizer = step.configure_optimizer(model, lr=1e-2, weight_decay=0.0)
    x, y = batch(4, B=4, T=BLOCK)
    losses = [step.train_step(model, optimizer, x, y) for _ in range(120)]
    assert losses[0] > 2.0, f"the first loss should be near ln(11) = 2.40, got {losses[0]:.3f}"
    assert min(losses) < 0.5, (
        f"one batch was not memorised: after 120 steps the loss is {losses[-1]:.3f} (lowest {min(losses):.3f}), "
        f"expected below 0.5\ndoes train_step call optimizer.step()? does the optimizer hold all the parameters?"
    )


# evaluate

def test_evaluate_is_the_mean_loss_over_the_batches(step):
    model = tiny_gpt(step)
    data = token_data(200)
    got = step.evaluate(model, data, BLOCK, 4, 5, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    get_batch = step.get_batch
    with torch.no_grad():
        losses = [model(*get_batch(data, BLOCK, 4, generator=g))[1].item() for _ in range(5)]
    want = sum(losses) / len(losses)
    assert isinstance(got, float), f"evaluate should return a float, got {type(got).__name__}"
    assert math.isclose(got, want, rel_tol=1e-5), (
        f"return the mean loss of n_batches batches drawn with get_batch(..., generator=generator): expected "
        f"{want:.5f}, got {got:.5f}\n(their sum would be {sum(losses):.5f})"
    )


def test_evaluate_turns_dropout_off_and_restores_the_mode(step):
    model = tiny_gpt(step, dropout=0.5)
    data = token_data(200)
    model.train()
    first = step.evaluate(model, data, BLOCK, 4, 3, generator=torch.Generator().manual_seed(1))
    assert model.training, "after evaluate the model is no longer in training mode: put back the mode it was in"
    second = step.evaluate(model, data, BLOCK, 4, 3, generator=torch.Generator().manual_seed(1))
    assert first == second, (
        f"two evaluations on the same batches gave {first:.5f} and {second:.5f}: dropout is still on. "
        f"Call model.eval() before measuring"
    )
    model.eval()
    step.evaluate(model, data, BLOCK, 4, 1, generator=torch.Generator().manual_seed(1))
    assert not model.training, (
        "a model in eval mode came back in training mode: restore the mode it had (model.train(was_training)), "
        "do not always switch to training"
    )


# steps_per_epoch

@pytest.mark.parametrize("n_tokens, batch_size, block_size, want",
                         [(10_000, 16, 64, 9), (2048, 16, 64, 2), (2047, 16, 64, 1), (100, 16, 64, 1), (6, 2, 3, 1),
                          (7, 1, 1, 7)])
def test_steps_per_epoch_reads_the_tokens_about_once(step, n_tokens, batch_size, block_size, want):
    got = step.steps_per_epoch(n_tokens, batch_size, block_size)
    assert got == want, (
        f"steps_per_epoch({n_tokens}, batch_size={batch_size}, block_size={block_size}) should be {want} "
        f"(n_tokens // (batch_size * block_size), at least 1), got {got}"
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
