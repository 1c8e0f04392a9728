"""Step 6: the position-wise feed-forward network.

Attention moves information between positions; the feed-forward network then processes each position on its
own: widen the vector (d_ff, four times n_embd in GPT-2), apply a non-linearity, and project back. Most of a
GPT's parameters live here.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import GPTConfig


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU in GPT-2's tanh approximation: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))).

    gelu(0) = 0; gelu(x) ~ x for large x; gelu(x) ~ 0 for very negative x, smoothly, with a small dip below 0.
    Example: gelu(1.0) = 0.5 * (1 + tanh(0.79788 * 1.044715)) = 0.5 * (1 + tanh(0.83356)) = 0.8412
    """
    # PyTorch's fused op computes exactly the formula above; the check compares the two.
    return F.gelu(x, approximate="tanh")


GELU_TANH_COEFF = math.sqrt(2.0 / math.pi)  # for readers who want to write the formula out


class MLP(nn.Module):
    """Linear -> GELU -> Linear, applied to every position alone: x (B, T, n_embd) -> (B, T, n_embd)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)    # widen
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)  # back to the residual width
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = gelu(self.c_fc(x))  # (B, T, d_ff)
        return self.dropout(self.c_proj(h))  # (B, T, C)
