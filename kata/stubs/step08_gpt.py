"""Step 8: the GPT, exactly GPT-2's architecture.

Everything so far, stacked: embeddings, n_layer blocks, a final LayerNorm, and a linear layer that turns each
position's vector into one score (logit) per vocabulary token, predicting the next token. The output layer
shares its weights with the token embedding (weight tying), and the weights start as nanoGPT and Hugging Face
start GPT-2's (std 0.02 everywhere; OpenAI's own code drew the position table with 0.01).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .step03_embeddings import Embeddings, GPTConfig
from .step07_block import Block, LayerNorm


class GPT(nn.Module):
    """idx (B, T) -> logits (B, T, vocab_size), and the cross-entropy loss when targets (B, T) are given.

    logits[b, t] scores every vocabulary token as the one that follows idx[b, :t + 1].
    Example with vocab_size = 512: idx = [[15, 7, 300]] (1, 3) -> logits (1, 3, 512); at initialisation
    every row is close to uniform, so the loss is close to ln(512) = 6.24.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        # TODO: self.transformer = nn.ModuleDict(dict(emb=Embeddings(config), h=ModuleList of n_layer Blocks,
        # ln_f=LayerNorm(config.n_embd, bias=config.bias))) and self.lm_head (C -> vocab_size, bias=False),
        # tied: self.lm_head.weight = self.transformer.emb.wte.weight. Then self.apply(self._init_weights) and
        # re-draw every parameter named "*c_proj.weight" with std 0.02 / math.sqrt(2 * config.n_layer).
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation of one module: Linear and Embedding weights normal with std 0.02, biases 0.

        The std 0.02 for every table is nanoGPT's and Hugging Face's convention (OpenAI's code drew wpe with
        0.01). Called on every module by self.apply. LayerNorms keep the weight 1 and bias 0 they were built
        with.
        """
        # TODO: for an nn.Linear, nn.init.normal_(module.weight, mean=0.0, std=0.02), and nn.init.zeros_ on
        # its bias unless that is None; for an nn.Embedding, the same normal_ on its weight. Others: nothing.
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache=None):
        """Logits (B, T, vocab_size), and the mean cross-entropy over all positions (None without targets).

        targets[b, t] is the token that follows idx[b, t] (already shifted, step 2); a target of -1 is left
        out of the loss. `cache` is step 10's key/value cache, None while training.
        """
        B, T = idx.size()
        start = cache.length if cache is not None else 0  # step 10: tokens already in the cache
        # TODO: x = self.transformer.emb(idx, start), then each block i in turn: x = block(x, cache.layers[i]
        # if cache is not None else None); ln_f, then lm_head: logits (B, T, vocab_size). With targets,
        # loss = F.cross_entropy(logits as (B * T, vocab_size), targets as (B * T,), ignore_index=-1);
        # without targets, loss = None. Return logits, loss.
        raise NotImplementedError

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each tied tensor counted once; non_embedding leaves out the position table."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.transformer.emb.wpe.weight.numel()
        return n
