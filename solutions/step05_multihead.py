"""Step 5: multi-head attention, as GPT-2 computes it.

One head can only look for one kind of relation at a time. Several heads in parallel, each on its own slice
of the vector, can follow several (the previous word, the subject, the opening quote...). GPT-2 computes all
heads' queries, keys and values with one fused matrix multiply, splits them into heads with a reshape, and
mixes the heads' outputs back together with an output projection.
"""

import torch
import torch.nn as nn

from .step03_embeddings import GPTConfig
from .step04_attention import causal_attention, sdpa_causal_attention


class CausalSelfAttention(nn.Module):
    """n_head causal attention heads side by side: x (B, T, n_embd) -> y (B, T, n_embd).

    Head h owns the slice h * hs .. (h + 1) * hs of q, k and v, where hs = n_embd // n_head.
    Example, n_embd = 6, n_head = 2, hs = 3: a position's q = [a, b, c, d, e, f] -> head 0 gets [a, b, c],
    head 1 gets [d, e, f].
    Shapes: x (B, T, 6) -> c_attn (B, T, 18) -> q, k, v (B, T, 6) -> (B, T, 2, 3) -> (B, 2, T, 3), one
    attention per head -> (B, 2, T, 3) -> (B, T, 2, 3) -> (B, T, 6) -> c_proj (B, T, 6).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd={config.n_embd} must be divisible by n_head={config.n_head}: "
                             f"each head gets an equal slice of the vector")
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)      # mixes the heads' outputs
        self.resid_dropout = nn.Dropout(config.dropout)
        self.flash = True  # PyTorch's fused kernel; False runs step 4's causal_attention, written by hand

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        hs = C // self.n_head
        # Split C into n_head slices of hs, then move the head axis before T so each head attends on its own.
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        if cache is not None:  # step 10: keys and values of the tokens before these, kept between calls
            k, v = cache.update(k, v)  # (B, nh, T_past + T, hs)
        dropout_p = self.dropout if self.training else 0.0
        if self.flash:
            y = sdpa_causal_attention(q, k, v, dropout_p)  # (B, nh, T, hs)
        else:
            y, _ = causal_attention(q, k, v, dropout_p)    # (B, nh, T, hs)
        # Put the heads side by side again: the inverse of the split above.
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)
