"""Step 7: the transformer block.

A block is attention (communication between positions, steps 4 and 5) followed by the feed-forward network
(computation at each position, step 6). Two ideas make a deep stack of blocks trainable: residual
connections, which add each sublayer's output to its input instead of replacing it, and a LayerNorm before
each sublayer (pre-norm, as in GPT-2), which hands every sublayer numbers on a steady scale.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import GPTConfig
from .step05_multihead import CausalSelfAttention
from .step06_feedforward import MLP


class LayerNorm(nn.Module):
    """Normalise each vector to mean 0 and variance 1 over its last axis, then scale and shift.

    y = (x - mean) / sqrt(var + eps) * weight + bias, where mean and var are taken over the last axis and
    var is the biased variance (divide by n, not n - 1). x of any shape (..., ndim) -> y of the same shape.
    Example: x = [1., 3.] -> mean 2, var ((1 - 2)**2 + (3 - 2)**2) / 2 = 1
             -> (x - 2) / sqrt(1 + 1e-5) = [-0.999995, 0.999995]
             -> with weight [2., 1.] and bias [0., 0.5]: [-1.99999, 1.499995]
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))                    # gain, starts at 1
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None  # shift, starts at 0
        self.eps = eps  # keeps the division finite when a vector is constant (var = 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TODO: mean and variance of x over the last axis (dim=-1, keepdim=True; the variance with
        # unbiased=False), then (x - mean) / torch.sqrt(var + self.eps) * self.weight, plus self.bias unless
        # it is None. (PyTorch's fused op, F.layer_norm, computes the same; write it by hand first.)
        raise NotImplementedError


class Block(nn.Module):
    """Pre-norm transformer block: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). (B, T, C) -> (B, T, C).

    Example with n_embd = 64: x (2, 5, 64) -> + attention's (2, 5, 64) -> + the MLP's (2, 5, 64) -> (2, 5, 64)
    `cache` is step 10's key/value cache of this block's attention; None while training.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        # TODO: four parts, with GPT-2's names: self.ln_1 = LayerNorm(config.n_embd, bias=config.bias),
        # self.attn = CausalSelfAttention(config), self.ln_2 (a second LayerNorm like ln_1),
        # and self.mlp = MLP(config).
        raise NotImplementedError

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, C = x.size()
        # TODO: two residual updates, pre-norm: add to x what attention makes of ln_1(x) (hand it the cache:
        # self.attn(..., cache)), then add to x what the MLP makes of ln_2(x). Return x, still (B, T, C).
        raise NotImplementedError
