"""Two other position tables for step 3's Embeddings: none at all, and the original Transformer's fixed waves.

Embeddings adds wpe(pos) to every token's vector. Both variants replace that one submodule, wpe, and leave the
rest of the model as it is:

    NoPositions          wpe(pos) = 0: no position signal at all; only the causal mask tells positions apart
    SinusoidalPositions  wpe(pos)[2i] = sin(pos / 10000^(2i / C)), wpe(pos)[2i + 1] = cos(...): fixed waves of
                         ever longer wavelengths, nothing learned, scaled to the learned table's starting size
"""

import math

import torch
import torch.nn as nn


class NoPositions(nn.Module):
    """pos (T,) -> zeros (T, C): every position gets the same (empty) vector."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.n_embd = n_embd

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return torch.zeros(pos.size(0), self.n_embd, device=pos.device)  # (T, C)


def sinusoids(block_size: int, n_embd: int) -> torch.Tensor:
    """The table (block_size, n_embd): even columns sin(pos * f_i), odd columns cos(pos * f_i), f_i = 10000^(-2i/C).

    block_size=2, n_embd=2 -> f_0 = 1: [[sin 0, cos 0], [sin 1, cos 1]] = [[0, 1], [0.841, 0.540]]
    """
    pos = torch.arange(block_size, dtype=torch.float32)[:, None]  # (T, 1)
    frequencies = torch.exp(torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(10000.0) / n_embd))
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(pos * frequencies)
    table[:, 1::2] = torch.cos(pos * frequencies[: n_embd // 2])  # an odd width has one cosine fewer
    return table


# GPT-2 starts its token table at std 0.02; waves of amplitude 1 (std 0.71) would drown the tokens' vectors. The
# original Transformer scaled its token embeddings up by sqrt(d_model) instead; here the waves are scaled down to
# the learned table's starting size, so that only the kind of position signal differs between the two variants.
WAVE_SCALE = 0.02 * math.sqrt(2)


class SinusoidalPositions(nn.Module):
    """pos (T,) -> rows of the fixed sinusoids table (T, C), times WAVE_SCALE; a buffer, so the optimizer never
    changes it."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.register_buffer("table", WAVE_SCALE * sinusoids(block_size, n_embd), persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.table[pos]  # (T, C)


def without_positions(model) -> None:
    model.transformer.emb.wpe = NoPositions(model.config.n_embd)


def with_sinusoids(model) -> None:
    model.transformer.emb.wpe = SinusoidalPositions(model.config.block_size, model.config.n_embd)
