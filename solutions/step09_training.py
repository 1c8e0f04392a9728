"""Step 9: the training loop.

Step 8's GPT starts out guessing: its loss is about ln(vocab_size), the loss of a uniform guess. Training
lowers it one small step at a time: take a batch of windows (step 2), measure the loss, let autograd find each
weight's gradient, and move every weight a little against it. This step adds what makes that work well in
practice, with the settings the GPT-3 paper published, as nanoGPT uses them (the GPT-2 paper gives none):
AdamW with weight decay on the matrices only, a learning rate that warms up and then decays along a cosine,
gradient clipping, and an evaluation on held-out text with dropout turned off, reported as a loss and as a
perplexity.
"""

import math
import time
from dataclasses import dataclass

import torch

from .step02_data import get_batch
from .step08_gpt import GPT, GPTConfig  # noqa: F401  (GPTConfig: for the checks and the demos)


def adamw(param_groups: list[dict], lr: float, betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW over the given parameter groups; fused into one kernel where PyTorch offers it."""
    # Fused: one kernel updates every tensor at once, instead of a loop of small operations per tensor. PyTorch
    # has it for CUDA, and for the CPU since 2.4; elsewhere foreach still batches the tensors per operation.
    try:
        return torch.optim.AdamW(param_groups, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(param_groups, lr=lr, betas=betas, foreach=True)


def configure_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1,
                        betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW with two parameter groups: weight decay on the matrices, none on the rest.

    Decay (p.dim() >= 2): every Linear weight and the embedding tables (wte, which lm_head shares, and wpe).
    No decay (p.dim() < 2): biases and LayerNorm weights. Shrinking those toward 0 does not keep the model
    simple; it only fights the scale and offset each layer needs.
    GPT(n_layer=1, bias=True) -> decay: wte, wpe, c_attn, attn.c_proj, c_fc, mlp.c_proj weights (6 matrices);
    no decay: ln_1, ln_2, ln_f weights and biases and the 4 Linear biases (10 vectors).
    betas (0.9, 0.95) are GPT-3's: the second moment forgets faster than Adam's default 0.999.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # a tied tensor is listed once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return adamw(groups, lr, betas)


def lr_at(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float | None = None) -> float:
    """The learning rate at `step` (counting from 0): a linear warm-up, then a cosine down to min_lr.

    Warm-up, step < warmup_steps:  max_lr * (step + 1) / warmup_steps   (small at first: Adam's estimates of
                                    the gradients' size are still poor, and big early steps can wreck the model)
    Then:                           min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr),
                                    progress = (step - warmup_steps) / (total_steps - warmup_steps), 0 -> 1
    From total_steps on:            min_lr.   min_lr defaults to max_lr / 10.
    max_lr=1.0, warmup_steps=4, total_steps=14: step 0 -> 0.25, step 3 -> 1.0, step 4 -> 1.0 (cosine starts),
    step 9 -> 0.1 + 0.5 * (1 + cos(pi / 2)) * 0.9 = 0.55 (half way), step 14 -> 0.1
    """
    if min_lr is None:
        min_lr = max_lr / 10
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1 over the decay
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most max_norm; return the norm before.

    The global norm treats every gradient as one long vector: sqrt(sum over all tensors of sum(g ** 2)).
    Scaling every tensor by the same factor keeps the direction of the step and only shortens it.
    grads [3., 0.] and [0., 4.]: norm sqrt(9 + 16) = 5; max_norm=1 -> both times 1/5: [0.6, 0.], [0., 0.8]
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads))  # one number for all tensors
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / norm)  # in place, so the optimizer sees the clipped gradients
    return norm.item()


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy): the number of tokens the model hesitates between, on average.

    A uniform guess over V tokens has loss ln(V) and perplexity V:  ln(4) = 1.386 -> 4.0.  A perfect model: 0 -> 1.
    """
    return math.exp(mean_loss)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               max_norm: float = 1.0) -> float:
    """One optimisation step on the batch x, y (B, T); returns its loss, measured before the update.

    A fresh GPT with a vocabulary of 11 tokens: returns about ln(11) = 2.40, and every weight has moved once.
    """
    optimizer.zero_grad(set_to_none=True)  # backward adds into .grad: start every step from nothing
    _, loss = model(x, y)
    loss.backward()
    clip_grad_norm(model.parameters(), max_norm)  # before step: the optimizer must use the clipped gradients
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, block_size: int, batch_size: int, n_batches: int,
             generator: torch.Generator | None = None) -> float:
    """The mean loss over n_batches random batches of data, with dropout off; the model's mode is restored.

    Dropout would make the model weaker than it is and the number noisy, so evaluation runs in eval mode.
    n_batches=3 with batch losses 2.0, 2.2, 2.4 -> 2.2
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    for _ in range(n_batches):
        x, y = get_batch(data, block_size, batch_size, generator=generator)
        _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train(was_training)
    return total / n_batches


@dataclass
class TrainConfig:
    epochs: int = 30                 # passes over the training tokens
    batch_size: int = 16             # windows per step
    lr: float = 3e-4                 # the peak learning rate, reached at the end of the warm-up
    weight_decay: float = 0.1        # AdamW's pull of the matrices toward 0 (GPT-3's value)
    grad_clip: float = 1.0           # the largest global gradient norm a step may use
    warmup_steps: int | None = None  # None: 5% of all steps (at least 1)
    eval_batches: int = 20           # validation batches averaged at the end of each epoch
    seed: int = 1337                 # the same seed gives the same run, number for number


def steps_per_epoch(n_tokens: int, batch_size: int, block_size: int) -> int:
    """Steps in one epoch: enough random batches to read about every training token once.

    n_tokens=10_000, batch_size=16, block_size=64 -> 10_000 // 1024 = 9;  a text shorter than one batch -> 1
    """
    return max(1, n_tokens // (batch_size * block_size))


def train(model: GPT, train_data, val_data, config: TrainConfig, *, callback=None,
          start_epoch: int = 0, optimizer: torch.optim.Optimizer | None = None) -> list[dict]:
    """Train model on train_data for epochs start_epoch .. config.epochs - 1; return one event per epoch.

    callback(event) is called after every step with
        {"kind": "step", "epoch", "step" (1 .. steps_per_epoch), "steps_per_epoch", "loss", "lr", "elapsed"}
    and after every epoch with
        {"kind": "epoch", "epoch", "train_loss" (the epoch's mean), "val_loss", "val_ppl", "elapsed"}.
    Epochs count from 0; elapsed is in seconds since train began. val_data=None skips validation (val_loss
    and val_ppl are then None). An exception raised by the callback (Ctrl+C, say) stops training and reaches
    the caller. Give the optimizer of an earlier run (and start_epoch) to resume it; a new one otherwise.
    """
    torch.manual_seed(config.seed)  # dropout and anything else drawn from torch's global generator
    block_size = model.config.block_size
    device = next(model.parameters()).device
    n_steps = steps_per_epoch(len(train_data), config.batch_size, block_size)
    total_steps = config.epochs * n_steps
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, total_steps // 20)
    if optimizer is None:
        optimizer = configure_optimizer(model, config.lr, config.weight_decay)
    history = []
    start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        # One generator per epoch, seeded by the epoch: a resumed run reads the same batches as an unbroken one.
        batches = torch.Generator().manual_seed(config.seed + epoch)
        losses = []
        for i in range(n_steps):
            lr = lr_at(epoch * n_steps + i, config.lr, warmup, total_steps)
            for group in optimizer.param_groups:  # the optimizer reads its learning rate from here
                group["lr"] = lr
            x, y = get_batch(train_data, block_size, config.batch_size, generator=batches)
            loss = train_step(model, optimizer, x.to(device), y.to(device), config.grad_clip)
            losses.append(loss)
            if callback is not None:
                callback({"kind": "step", "epoch": epoch, "step": i + 1, "steps_per_epoch": n_steps,
                          "loss": loss, "lr": lr, "elapsed": time.perf_counter() - start})
        val_loss = val_ppl = None
        if val_data is not None:
            # The same validation batches every epoch, so the numbers are comparable from epoch to epoch.
            val_batches = torch.Generator().manual_seed(config.seed)
            val_loss = evaluate(model, val_data, block_size, config.batch_size, config.eval_batches, val_batches)
            val_ppl = perplexity(val_loss)
        event = {"kind": "epoch", "epoch": epoch, "train_loss": sum(losses) / len(losses),
                 "val_loss": val_loss, "val_ppl": val_ppl, "elapsed": time.perf_counter() - start}
        history.append(event)
        if callback is not None:
            callback(event)
    return history
