"""Step 6: the position-wise feed-forward network.

Attention (steps 4 and 5) moves information between positions; the feed-forward network then works on each
position alone: widen the vector to d_ff numbers (four times n_embd in GPT-2), bend it with a non-linearity,
and project it back to n_embd. The same weights serve every position, and most of a GPT's parameters live
here.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import GPTConfig


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU in GPT-2's tanh approximation: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3))).

    Like ReLU it lets large positive x through (gelu(x) ~ x) and stops very negative x (gelu(x) ~ 0), but
    smoothly, with a small dip below zero around x = -0.75. Works element by element, on any shape.
    Example: gelu(1.0) = 0.5 * 1 * (1 + tanh(0.79788 * (1 + 0.044715))) = 0.5 * (1 + tanh(0.83356))
                       = 0.5 * (1 + 0.68238) = 0.8412            (ReLU would give 1.0)
             gelu(-1.0) = -0.1588                                (ReLU would give 0.0)
    """
    # PyTorch's fused op computes exactly the formula above, in one pass over memory.
    # subtle: approximate="tanh" matters; plain F.gelu is the exact erf form, up to 5e-4 away from GPT-2's.
    return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    """Linear -> GELU -> Linear, applied to every position alone: x (B, T, n_embd) -> (B, T, n_embd).

    Example with n_embd = 64, d_ff = 256: x (2, 5, 64) -> c_fc -> (2, 5, 256) -> gelu -> c_proj -> (2, 5, 64)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)    # widen
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)  # back to the residual width
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        h = gelu(self.c_fc(x))  # (B, T, d_ff)
        # Dropout on what the block adds to the residual stream; nn.Dropout is the identity in eval mode.
        return self.dropout(self.c_proj(h))  # (B, T, C)
