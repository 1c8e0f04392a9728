"""Two other ways to wire step 7's Block, each wrapping the block's own parts (ln_1, attn, ln_2, mlp):

    pre-norm (step 7, GPT-2)   x = x + attn(ln_1(x));   x = x + mlp(ln_2(x))
    PostNorm (the original)    x = ln_1(x + attn(x));   x = ln_2(x + mlp(x))
    NoResidual                 x = attn(ln_1(x));       x = mlp(ln_2(x))      (no path around a sublayer)

The wrapped block keeps its weights as GPT built them, so a variant differs from the reference only in how the
parts are joined. `cache` is step 10's key/value cache, passed on to attention.
"""

import torch.nn as nn


class PostNorm(nn.Module):
    """The LayerNorm after each residual sum instead of before each sublayer."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, cache=None):
        b = self.block
        x = b.ln_1(x + b.attn(x, cache))  # (B, T, C)
        return b.ln_2(x + b.mlp(x))        # (B, T, C)


class NoResidual(nn.Module):
    """Each sublayer's output replaces its input: the signal must pass through every layer."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, cache=None):
        b = self.block
        x = b.attn(b.ln_1(x), cache)  # (B, T, C)
        return b.mlp(b.ln_2(x))       # (B, T, C)


def wrap_blocks(model, wrapper) -> None:
    """Put every block of model inside wrapper: wrap_blocks(model, PostNorm)."""
    blocks = model.transformer.h
    for i in range(len(blocks)):
        blocks[i] = wrapper(blocks[i])
