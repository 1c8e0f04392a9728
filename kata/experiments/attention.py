"""Attention scores divided by sqrt(hs) (step 4), by hs, or not at all.

Step 5's attention computes q, k, v with one Linear, c_attn, and step 4 divides every score q . k by sqrt(hs).
Multiplying q by a factor first multiplies every score by it, so wrapping c_attn is enough to change the
scale, and the attention code stays the step's own:

    divide by hs       q * 1/sqrt(hs):  q . k / sqrt(hs) / sqrt(hs) = q . k / hs
    no scale at all    q * sqrt(hs):    q . k * sqrt(hs) / sqrt(hs) = q . k
"""

import math

import torch
import torch.nn as nn

SCALES = ("sqrt", "hs", "none")  # what the scores are divided by: sqrt(hs), hs, nothing


class ScaledQueries(nn.Module):
    """c_attn, with the query third of its output (the first n_embd columns) multiplied by `factor`."""

    def __init__(self, c_attn: nn.Linear, n_embd: int, factor: float):
        super().__init__()
        self.c_attn = c_attn
        self.n_embd = n_embd
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.c_attn(x)  # (B, T, 3C)
        q, kv = qkv[..., :self.n_embd], qkv[..., self.n_embd:]
        return torch.cat([q * self.factor, kv], dim=-1)  # (B, T, 3C)


def factor(scale: str, head_size: int) -> float:
    """What q is multiplied by so that the scores end up divided by `scale`: hs=16 -> sqrt 1, hs 0.25, none 4."""
    return {"sqrt": 1.0, "hs": 1 / math.sqrt(head_size), "none": math.sqrt(head_size)}[scale]


def rescale_attention(model, scale: str) -> None:
    config = model.config
    f = factor(scale, config.n_embd // config.n_head)
    if f == 1.0:
        return
    for block in model.transformer.h:
        block.attn.c_attn = ScaledQueries(block.attn.c_attn, config.n_embd, f)
