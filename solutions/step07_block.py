"""Step 7: the transformer block.

A block is attention (communication between positions) followed by the feed-forward network (computation at
each position). Two ideas make a deep stack of blocks trainable: residual connections, which add each
sublayer's output to its input instead of replacing it, and LayerNorm before each sublayer (pre-norm, as in
GPT-2), which keeps the numbers on a steady scale.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import GPTConfig
from .step05_multihead import CausalSelfAttention
from .step06_feedforward import MLP


class LayerNorm(nn.Module):
    """Normalise each vector to mean 0 and variance 1 over its last axis, then scale and shift.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance (divide by n, not n - 1).
    Example: x = [1., 3.] -> mean 2, var 1 -> [-1., 1.] (with weight 1, bias 0, eps ignored).
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # PyTorch's fused op computes exactly the formula above; the check compares against nn.LayerNorm.
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). (B, T, C) -> (B, T, C)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        # The residual stream x flows straight through; each sublayer reads a normalised copy and adds to it.
        x = x + self.attn(self.ln_1(x), cache)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))          # (B, T, C)
        return x
