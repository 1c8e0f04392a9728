"""Step 3: token and positional embeddings, the model's first layer.

Step 2 turned text into windows of token ids. This step turns each id into a vector the network can learn
from: one learned vector per token (what it is) plus one learned vector per position (where it is), as in
GPT-2. The whole model's configuration, used from here to step 8, is the `GPTConfig` below.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class GPTConfig:
    block_size: int = 64      # the longest context the model reads, in tokens (GPT-2: 1024)
    vocab_size: int = 512     # number of distinct tokens, from the tokenizer of step 1 (GPT-2: 50257)
    n_layer: int = 4          # transformer blocks stacked in step 8 (GPT-2 small: 12)
    n_head: int = 4           # attention heads per block, step 5 (GPT-2 small: 12)
    n_embd: int = 64          # width of every token's vector, d_model (GPT-2 small: 768)
    d_ff: int = 256           # hidden width of the feed-forward network, step 6 (GPT-2: 4 * n_embd)
    dropout: float = 0.0      # probability of zeroing an activation while training (GPT-2: 0.1)
    bias: bool = True         # biases in Linear and LayerNorm layers, as in GPT-2


class Embeddings(nn.Module):
    """Token embedding + learned positional embedding, then dropout.

    idx (B, T) of token ids -> x (B, T, n_embd), where x[b, t] = wte[idx[b, t]] + wpe[start + t].
    Example, n_embd = 2, wte = [[1, 0], [0, 1], [2, 2]], wpe = [[10, 20], [30, 40], [50, 60]] (no dropout):
        idx = [[2, 0]]            -> [[[2+10, 2+20], [1+30, 0+40]]] = [[[12, 22], [31, 40]]]
        idx = [[2, 0]], start = 1 -> [[[2+30, 2+40], [1+50, 0+60]]] = [[[32, 42], [51, 60]]]
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.block_size = config.block_size
        # TODO: make the three layers, named as in GPT-2:
        #   self.wte, an nn.Embedding with one row of n_embd numbers per token (vocab_size rows),
        #   self.wpe, an nn.Embedding with one row per position (block_size rows),
        #   self.drop, an nn.Dropout(config.dropout).
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """`start` is the position of idx's first token: 0, except when step 10's KV cache feeds new tokens.

        Raises ValueError when start + T > block_size: the position table has no row for those positions.
        """
        B, T = idx.size()
        # TODO: 1. if start + T > self.block_size, raise ValueError naming block_size and its value.
        #       2. the positions start .. start + T - 1: torch.arange(..., device=idx.device), shape (T,).
        #       3. token rows self.wte(idx) (B, T, C) plus position rows self.wpe(pos) (T, C): broadcasting
        #          adds the same position rows to every sequence. Return self.drop of the sum.
        raise NotImplementedError
