"""Step 4: one head of causal self-attention.

Until now every position was processed alone. Attention lets each position gather information from the
positions before it: a query asks, every key answers how well it matches, and the values of the best
matches are averaged. The causal mask makes sure no position ever reads the future.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import GPTConfig


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention with a causal mask, written out by hand.

    q (..., Tq, hs), k and v (..., Tk, hs) with Tq <= Tk. The queries are the last Tq positions of the Tk
    (Tq == Tk in training; Tq < Tk when step 10's cache holds earlier keys), so query i sits at position
    Tk - Tq + i and may look at keys 0 .. Tk - Tq + i.
    Returns y (..., Tq, hs) and the attention weights att (..., Tq, Tk), each row summing to 1.

    Example, two positions, hs = 4: q = [[1, 1, 1, 1], [1, 1, 1, 1]], k = [[0, 0, 0, 0], [1, 1, 1, 1]]
        scores = q @ k^T / sqrt(4)    = [[0, 4], [0, 4]] / 2 = [[0, 2], [0, 2]]
        mask the future with -inf     -> [[0, -inf], [0, 2]]
        softmax over each row (keys)  -> att = [[1, 0], [0.119, 0.881]]      (e^0 / (e^0 + e^2) = 0.119)
        v = [[1, 0, 0, 0], [0, 1, 0, 0]] -> y = att @ v = [[1, 0, 0, 0], [0.119, 0.881, 0, 0]]
    Dividing by hs = 4 instead would give [0.269, 0.731] in the last row; not dividing, [0.018, 0.982].
    With a cache, the last query alone (Tq = 1, Tk = 2) is position 1 and sees both keys:
        q = [[1, 1, 1, 1]] -> att = [[0.119, 0.881]]
    """
    Tq, Tk = q.size(-2), k.size(-2)
    # TODO: 1. scores = q @ k.transpose(-2, -1), divided by sqrt(hs) = math.sqrt(k.size(-1))  (..., Tq, Tk).
    #       2. allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=...): which
    #          diagonal lets query i see keys 0 .. Tk - Tq + i? Fill the other scores with float("-inf").
    #       3. att = softmax over the keys; then `if dropout_p > 0.0: att = F.dropout(att, p=dropout_p)`.
    #       4. y = att @ v  (..., Tq, hs); return y, att
    raise NotImplementedError


def sdpa_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          dropout_p: float = 0.0) -> torch.Tensor:
    """The same computation as `causal_attention`, by PyTorch's fused kernel (no weights returned).

    Fused means the Tq x Tk score matrix is never stored whole, which saves memory and time.
    """
    Tq, Tk = q.size(-2), k.size(-2)
    if Tq == Tk:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    # subtle: is_causal=True aligns the mask to the top-left corner, which is wrong when Tq < Tk.
    # One new query may see every cached key; a longer one needs the shifted triangle spelled out.
    if Tq == 1:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


class Head(nn.Module):
    """One head of causal self-attention: x (B, T, n_embd) -> y (B, T, head_size).

    Three linear maps named query, key and value turn each position's vector into its q, k and v, each
    (B, T, head_size); causal_attention then mixes the values. Example: n_embd = 64, head_size = 16,
    x (2, 5, 64) -> q, k, v (2, 5, 16) -> att (2, 5, 5) -> y (2, 5, 16).
    """

    def __init__(self, config: GPTConfig, head_size: int):
        super().__init__()
        # TODO: three nn.Linear layers from n_embd to head_size, named query, key and value,
        #       each with bias=config.bias.
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        # TODO: q, k, v from self.query, self.key and self.value, each (B, T, hs); then
        #       causal_attention(q, k, v) gives (y, att): return y.
        raise NotImplementedError
