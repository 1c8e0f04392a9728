"""Step 10: generation, one token at a time.

The trained GPT (steps 8 and 9) gives, at every position, a score (logit) for each possible next token. To write text, take
the scores at the last position, turn them into probabilities, draw one token, append it, and ask again.
Three knobs shape the draw: the temperature (how bold), top-k (only the k likeliest tokens) and top-p (only
the likeliest tokens that together make up probability p). The loop must never show the model more than
block_size tokens, so it crops the context. And since every new token would make the model redo the work for
all the tokens before it, a KV cache keeps each layer's keys and values and feeds only the newest token.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .step08_gpt import GPT, GPTConfig  # noqa: F401  (GPTConfig: for the checks and the demo)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature: below 1 sharpens the distribution, above 1 flattens it.

    logits [2., 4.] at temperature 2 -> [1., 2.]: probabilities [0.12, 0.88] become [0.27, 0.73].
    Temperature 0 means "always the likeliest token": sample_next handles it with argmax, since x / 0 is inf.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature} (sample_next takes 0 as argmax)")
    # TODO: one line: divide the logits by the temperature.
    raise NotImplementedError


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; set the others to -inf (probability 0 after the softmax).

    logits [[1., 3., 2., 0.]], k=2 -> [[-inf, 3., 2., -inf]].  k >= vocabulary size keeps everything.
    Exactly k survive, even with ties: [[1., 2., 2., 2.]], k=2 -> two of the three 2s (either two).
    """
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    # TODO: k can be larger than the vocabulary: use min(k, logits.size(-1)). values, indices = torch.topk(
    #   logits, k, dim=-1) gives the k largest of each row and where they are. Start from a tensor full of
    #   -inf (torch.full_like) and write the values back at their indices: .scatter(-1, indices, values).
    raise NotImplementedError


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the fewest likeliest tokens whose probabilities add up to at least p.

    Sort by probability, going down; a token is kept while the tokens before it add up to less than p. So the
    token that crosses p is kept, and p=1.0 keeps every token.
    probs [0.5, 0.3, 0.15, 0.05], p=0.7: mass before each token [0, 0.5, 0.8, 0.95] -> keep the first 2
    (0.5 < 0.7 but 0.5 + 0.3 = 0.8 reaches 0.7); p=0.81 -> keep 3.
    Tied tokens count one by one: probs [0.4, 0.3, 0.3], p=0.6 -> 0.4 and one of the two 0.3s.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    # TODO: 1. sorted_logits, order = torch.sort(logits, dim=-1, descending=True); probs = their softmax.
    #       2. mass_before = probs.cumsum(dim=-1) - probs: what the likelier tokens add up to.
    #       3. drop = mass_before >= p (a bool tensor, in sorted order); put it back in vocabulary order
    #          with drop.scatter(-1, order, drop), and return logits.masked_fill(drop, float("-inf")).
    raise NotImplementedError


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw the next token of each row: logits (B, V) -> token ids (B, 1).

    temperature 0 -> the likeliest token (argmax), no randomness. Otherwise divide by the temperature, keep
    the top_k, then the top_p (each only when given), and draw from the softmax of what is left.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be 0 or more, got {temperature}")
    # TODO: temperature == 0: return logits.argmax(dim=-1, keepdim=True). Otherwise apply_temperature, then
    #   top_k_filter if top_k is not None, then top_p_filter if top_p is not None; softmax over the last
    #   axis; draw with torch.multinomial(probs, num_samples=1, generator=generator).
    raise NotImplementedError


class LayerCache:
    """The keys and values of one attention layer, for every token seen so far (used without gradients).

    The buffers are made once, for block_size tokens, and filled in place. Appending with torch.cat instead
    would copy everything cached at every new token, T^2 / 2 copies over T tokens. On the course's models
    (4 layers, 64 wide, one CPU thread) both take about 0.35 ms a token, measured; the copies start to
    count with long contexts and wide models, and the buffers never make them.
    """

    def __init__(self, block_size: int):
        self.block_size = block_size
        self.k = None  # (B, nh, block_size, hs), made at the first update, when B, nh, hs are known
        self.v = None
        self.length = 0  # tokens stored so far

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) after the tokens already cached; return the keys and values of all of
        them, each (B, nh, length + T, hs).

        Example: 3 tokens cached, update with T=1 -> returns (B, nh, 4, hs); length goes from 3 to 4.
        """
        B, nh, T, hs = k.size()
        if self.k is None:
            self.k = k.new_empty(B, nh, self.block_size, hs)
            self.v = v.new_empty(B, nh, self.block_size, hs)
        if self.length + T > self.block_size:
            raise ValueError(f"the cache holds {self.block_size} tokens; {self.length} are cached, {T} more "
                             f"do not fit: reset it and start again from the last block_size tokens")
        # TODO: copy k into self.k at positions self.length .. self.length + T - 1 of axis 2 (a slice
        #   assignment, self.k[:, :, a:b] = k), the same for v; add T to self.length; return the filled part
        #   of both buffers, self.k[:, :, :self.length] and likewise for v.
        raise NotImplementedError

    def reset(self) -> None:
        self.k = self.v = None
        self.length = 0


class KVCache:
    """One LayerCache per block: GPT.forward reads `length` (the position of the next token) and hands
    layers[i] to block i, whose attention calls its update(k, v)."""

    def __init__(self, n_layer: int, block_size: int):
        self.layers = [LayerCache(block_size) for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """Tokens cached so far: every layer stores each token once, so the first layer's count is everyone's."""
        return self.layers[0].length

    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()


def next_token_logits(model: GPT, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
    """The logits (B, V) for the token after idx (B, T), showing the model at most block_size tokens.

    Without a cache: run the model on the last block_size tokens of idx.
    With a cache that holds every token of idx but the newest (and has room): run only the newest token.
    Otherwise (empty cache, or full): reset it and fill it again from the last block_size tokens of idx.
    subtle: a full cache cannot slide by one token. Each cached key was computed at a position (wpe), and
    after cropping every token sits one position earlier; in the deeper layers each key and value also saw the
    dropped token. A slid cache would only approximate the cropped context, so all are computed again.
    """
    block_size = model.config.block_size
    # TODO: if cache is not None and 0 < cache.length < block_size: logits, _ = model(idx[:, -1:], cache=cache).
    #   Otherwise: reset the cache if there is one, and run model(idx[:, -block_size:], cache=cache).
    #   Return the logits of the last position only, logits[:, -1, :].
    raise NotImplementedError


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Run a block with the model in eval mode (dropout off), then put back the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.inference_mode()
def generate_tokens(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                    generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield max_new_tokens new tokens, each (B, 1), one at a time, as soon as each is drawn.

    idx (B, T) is the prompt, T >= 1. On a generator function, the decorator turns inference mode on each
    time the loop resumes: no gradients are tracked while it runs (and, measured, it is about 8% faster per
    token than torch.no_grad, since no version counters are kept either).
    """
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"the prompt must be a (B, T) tensor of token ids with T >= 1, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be 0 or more, got {max_new_tokens}")
    # TODO: cache = KVCache(model.config.n_layer, model.config.block_size) if use_cache, else None. Then,
    #   inside `with eval_mode(model):`, max_new_tokens times: logits = next_token_logits(model, idx, cache);
    #   draw idx_next with sample_next (passing temperature, top_k, top_p, generator); append it to idx
    #   (torch.cat along dim=1); yield idx_next.
    raise NotImplementedError


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The prompt followed by max_new_tokens new tokens: idx (B, T) -> (B, T + max_new_tokens).

    idx=[[5, 9]], max_new_tokens=3 -> [[5, 9, a, b, c]], a, b, c drawn one after the other.
    """
    new = list(generate_tokens(model, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator))
    return torch.cat([idx, *new], dim=1)  # (B, T + max_new_tokens)
