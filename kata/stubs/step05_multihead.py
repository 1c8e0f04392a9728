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
        # TODO: 1. if n_embd is not divisible by n_head, raise ValueError naming both numbers.
        #       2. keep n_head, n_embd and dropout (a float) from config as self.n_head, .n_embd, .dropout.
        #       3. self.c_attn: nn.Linear from n_embd to 3 * n_embd (q, k, v of every head in one layer);
        #          self.c_proj: nn.Linear from n_embd to n_embd (both bias=config.bias); self.resid_dropout.
        raise NotImplementedError  # delete this line once the layers exist; the line below is given
        self.flash = True  # PyTorch's fused kernel; False runs step 4's causal_attention, written by hand

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        hs = C // self.n_head
        # TODO: give q, k and v a head axis: .view(B, T, self.n_head, hs) cuts C into n_head slices,
        #       then .transpose(1, 2) moves the head axis before T: each becomes (B, nh, T, hs).
        raise NotImplementedError  # delete this line once q, k, v have their heads; the lines below are given
        if cache is not None:  # step 10: keys and values of the tokens before these, kept between calls
            k, v = cache.update(k, v)  # (B, nh, T_past + T, hs)
        dropout_p = self.dropout if self.training else 0.0
        if self.flash:
            y = sdpa_causal_attention(q, k, v, dropout_p)  # (B, nh, T, hs)
        else:
            y, _ = causal_attention(q, k, v, dropout_p)    # (B, nh, T, hs)
        # TODO: put the heads side by side again, the inverse of the split: transpose back to (B, T, nh, hs),
        #       .contiguous(), .view(B, T, C). Then return self.resid_dropout(self.c_proj(y)).
        raise NotImplementedError
