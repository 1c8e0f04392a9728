"""Two other position tables for step 3's Embeddings: none at all, and GPT-2's predecessor's fixed waves.

Embeddings adds wpe(pos) to every token's vector. Both variants replace that one submodule, wpe, and leave the
rest of the model as it is:

    NoPositions          wpe(pos) = 0: the model sees which tokens came before, but not in what order
    SinusoidalPositions  wpe(pos)[2i] = sin(pos / 10000^(2i / C)), wpe(pos)[2i + 1] = cos(...): fixed waves of
                         ever longer wavelengths (the original Transformer's), nothing learned
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


class SinusoidalPositions(nn.Module):
    """pos (T,) -> rows of the fixed sinusoids table (T, C); a buffer, so the optimizer never changes it."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.register_buffer("table", sinusoids(block_size, n_embd), persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.table[pos]  # (T, C)


def without_positions(model) -> None:
    model.transformer.emb.wpe = NoPositions(model.config.n_embd)


def with_sinusoids(model) -> None:
    model.transformer.emb.wpe = SinusoidalPositions(model.config.block_size, model.config.n_embd)
