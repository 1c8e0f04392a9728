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
        # PyTorch's fused op computes exactly the formula above.
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)  # (..., ndim)


class Block(nn.Module):
    """Pre-norm transformer block: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). (B, T, C) -> (B, T, C).

    Example with n_embd = 64: x (2, 5, 64) -> + attention's (2, 5, 64) -> + the MLP's (2, 5, 64) -> (2, 5, 64)
    `cache` is step 10's key/value cache of this block's attention; None while training.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)  # normalises what attention reads
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)  # normalises what the MLP reads
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, C = x.size()
        # The residual stream x flows straight through; each sublayer reads a normalised copy and adds to it.
        x = x + self.attn(self.ln_1(x), cache)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))          # (B, T, C)
        return x
