"""Two models to measure the GPT against, each with the GPT's interface (idx, targets) -> (logits, loss):

    CountingBigram   the next token's probability given only the current one, counted from the training
                     tokens: nothing is learned by gradient, and no context beyond one token is read
    LSTMModel        a recurrent network of about the GPT's size: it reads the tokens one after the other and
                     carries what it keeps in a state vector, where the GPT attends to every earlier position
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor | None):
    if targets is None:
        return None
    B, T, V = logits.size()
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index=-1)


class CountingBigram(nn.Module):
    """log P(next = b | current = a) = log((count(a, b) + smoothing) / (count(a) + smoothing * V)).

    tokens [0, 1, 0, 1, 0, 2], V = 3, smoothing 0: after 0 come 1, 1, 2 -> P(1 | 0) = 2/3, P(2 | 0) = 1/3;
    after 1 always 0 -> P(0 | 1) = 1. A token never followed by anything gets the uniform 1/V.
    The counts are a frozen parameter (V, V): stored numbers, not trained ones.
    """

    def __init__(self, config, tokens: np.ndarray, smoothing: float):
        super().__init__()
        self.config = config
        V = config.vocab_size
        ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        counts = torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V).view(V, V).double() + smoothing
        totals = counts.sum(dim=1, keepdim=True)
        probs = torch.where(totals > 0, counts / totals.clamp(min=1e-300), torch.full_like(counts, 1.0 / V))
        self.log_probs = nn.Parameter(probs.log().float(), requires_grad=False)  # (V, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache=None):
        logits = self.log_probs[idx]  # (B, T, V): the row of each current token
        return logits, next_token_loss(logits, targets)


def lstm_parameters(vocab_size: int, hidden: int, n_layer: int) -> int:
    """Parameters of LSTMModel: the tied embedding (V * h), then per layer 4 gates of (h x 2h) weights and 2 biases.

    vocab_size=512, hidden=100, n_layer=2 -> 51,200 + 2 * (8 * 100 * 100 + 8 * 100) = 212,800
    """
    return vocab_size * hidden + n_layer * (8 * hidden * hidden + 8 * hidden)


def matching_hidden(vocab_size: int, n_layer: int, parameters: int) -> int:
    """The widest hidden size whose LSTMModel has no more than `parameters` parameters."""
    hidden = 1
    while lstm_parameters(vocab_size, hidden + 1, n_layer) <= parameters:
        hidden += 1
    return hidden


class LSTMModel(nn.Module):
    """idx (B, T) -> embedding (B, T, h) -> n_layer LSTM layers (B, T, h) -> tied output layer (B, T, V).

    config: a GPTConfig whose n_embd is the hidden size and n_layer the number of LSTM layers.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(config.n_embd, config.n_embd, num_layers=config.n_layer, batch_first=True)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in the GPT
        nn.init.normal_(self.wte.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache=None):
        h, _ = self.lstm(self.wte(idx))  # (B, T, h), each position from the state after the tokens before it
        logits = self.lm_head(h)         # (B, T, V)
        return logits, next_token_loss(logits, targets)
