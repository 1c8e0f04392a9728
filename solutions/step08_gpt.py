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
        self.transformer = nn.ModuleDict(dict(
            emb=Embeddings(config),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in and writing it out use one matrix (fewer parameters, and it trains
        # better). The two names now hold the same tensor.
        self.lm_head.weight = self.transformer.emb.wte.weight
        self.apply(self._init_weights)
        # GPT-2 scales the last projection of every residual branch by 1/sqrt(2 * n_layer): each block adds
        # two branches to the residual stream, and this keeps its variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation of one module: Linear and Embedding weights normal with std 0.02, biases 0.

        The std 0.02 for every table is nanoGPT's and Hugging Face's convention (OpenAI's code drew wpe with
        0.01). Called on every module by self.apply. LayerNorms keep the weight 1 and bias 0 they were built
        with.
        """
        # Small weights make the first logits small, so the untrained model predicts nearly uniformly.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache=None):
        """Logits (B, T, vocab_size), and the mean cross-entropy over all positions (None without targets).

        targets[b, t] is the token that follows idx[b, t] (already shifted, step 2); a target of -1 is left
        out of the loss. `cache` is step 10's key/value cache, None while training.
        """
        B, T = idx.size()
        start = cache.length if cache is not None else 0  # step 10: tokens already in the cache
        x = self.transformer.emb(idx, start)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None)  # (B, T, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            # Every position is one prediction: flatten (B, T) into B * T rows for cross_entropy.
            # reshape, not view: targets sliced from a bigger tensor (idx[:, 1:]) need not be contiguous.
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each tied tensor counted once; non_embedding leaves out the position table."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.transformer.emb.wpe.weight.numel()
        return n
