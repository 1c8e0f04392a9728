"""Checks for step 3: token and positional embeddings.

Most checks use a tiny configuration with distinct sizes (B=2, T=5, n_embd=12, vocab_size=11, block_size=7),
so that a swapped axis cannot pass by accident.
"""

import re

import pytest
import torch

B, T, C, VOCAB, BLOCK = 2, 5, 12, 11, 7


def make(step, dropout=0.0, **overrides):
    torch.manual_seed(0)
    config = step.GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_embd=C, n_head=3, dropout=dropout, **overrides)
    return step.Embeddings(config)


def tokens(*shape, high=VOCAB, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g)


def embed(emb, idx, start=0):
    """emb(idx, start) for an input that fits (start + T <= block_size), which must not be refused."""
    try:
        return emb(idx, start)
    except ValueError as error:
        raise AssertionError(
            f"start={start} and T={idx.size(1)} fit in block_size={emb.wpe.weight.size(0)} but were refused: "
            f"refuse only start + T > block_size\nThe error was: {error}"
        ) from error


def expected(emb, idx, start=0):
    """What x must be, from the two tables: x[b, t] = wte[idx[b, t]] + wpe[start + t]."""
    wte, wpe = emb.wte.weight.detach(), emb.wpe.weight.detach()
    return wte[idx] + wpe[start:start + idx.size(1)]


def test_embeddings_have_the_gpt2_names_and_table_shapes(step):
    emb = make(step)
    names = {name: tuple(p.shape) for name, p in emb.named_parameters()}
    assert names == {"wte.weight": (VOCAB, C), "wpe.weight": (BLOCK, C)}, (
        f"expected two tables named as in GPT-2, wte (vocab_size, n_embd) and wpe (block_size, n_embd); got {names}\n"
        f"use nn.Embedding(config.vocab_size, config.n_embd) and nn.Embedding(config.block_size, config.n_embd)"
    )


def test_output_has_shape_batch_time_embedding(step):
    emb = make(step).eval()
    x = emb(tokens(B, T))
    assert isinstance(x, torch.Tensor), f"forward should return a tensor, got {type(x).__name__}"
    assert tuple(x.shape) == (B, T, C), (
        f"output shape is {tuple(x.shape)}, expected (B, T, n_embd) = {(B, T, C)}: add the (T, C) position "
        f"vectors to the (B, T, C) token vectors"
    )
    assert x.dtype == torch.float32, f"output should be float32 like the tables, got {x.dtype}"


def test_the_hand_example_from_the_docstring(step):
    """wte = [[1, 0], [0, 1], [2, 2]], wpe = [[10, 20], [30, 40], [50, 60]], idx = [[2, 0]]:
    start 0 -> [[2+10, 2+20], [1+30, 0+40]] = [[12, 22], [31, 40]]
    start 1 -> [[2+30, 2+40], [1+50, 0+60]] = [[32, 42], [51, 60]]
    """
    emb = step.Embeddings(step.GPTConfig(block_size=3, vocab_size=3, n_embd=2, n_head=1, dropout=0.0)).eval()
    with torch.no_grad():
        emb.wte.weight.copy_(torch.tensor([[1., 0.], [0., 1.], [2., 2.]]))
        emb.wpe.weight.copy_(torch.tensor([[10., 20.], [30., 40.], [50., 60.]]))
    idx = torch.tensor([[2, 0]])
    got = embed(emb, idx)
    want = torch.tensor([[[12., 22.], [31., 40.]]])
    assert torch.equal(got, want), (
        f"x[b, t] should be wte[idx[b, t]] + wpe[t]: expected {want.tolist()}, got {got.tolist()}"
    )
    got = embed(emb, idx, start=1)
    want = torch.tensor([[[32., 42.], [51., 60.]]])
    assert torch.equal(got, want), (
        f"with start=1 the positions are 1 and 2, not 0 and 1: expected {want.tolist()}, got {got.tolist()}"
    )


def test_each_vector_is_its_token_row_plus_its_position_row(step):
    emb = make(step).eval()
    idx = tokens(B, T)
    x = embed(emb, idx)
    want = expected(emb, idx)
    assert torch.equal(x, want), (
        "x[b, t] should be exactly wte[idx[b, t]] + wpe[t] (in eval mode): add the token row and the position row\n"
        f"largest difference: {(x - want).abs().max().item():.3g}"
    )


def test_positions_are_looked_up_by_position_not_by_token(step):
    """The same token at every position: the vectors must differ by exactly the rows of wpe."""
    emb = make(step).eval()
    idx = torch.full((1, T), 3)  # token 3 everywhere; token ids below block_size so a mix-up can run
    x = embed(emb, idx)[0]
    wpe = emb.wpe.weight.detach()
    for t in range(1, T):
        assert torch.allclose(x[t] - x[0], wpe[t] - wpe[0], atol=1e-6), (
            f"the same token at positions 0 and {t} should differ by wpe[{t}] - wpe[0]: look up wpe by position\n"
            f"Index the position table with the positions 0 .. T-1 (torch.arange), not with the token ids"
        )


def test_a_position_depends_only_on_its_own_token(step):
    emb = make(step).eval()
    idx = tokens(B, T)
    x = embed(emb, idx)
    for t in range(T):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % VOCAB
        y = embed(emb, changed)
        others = [s for s in range(T) if s != t]
        assert torch.equal(y[:, others], x[:, others]), (
            f"changing the token at position {t} changed the vector at another position: each position's "
            f"vector must depend only on its own token and its own position"
        )
        assert not torch.equal(y[:, t], x[:, t]), (
            f"changing the token at position {t} did not change its vector: look up wte with the token ids"
        )


def test_start_offsets_the_positions(step):
    emb = make(step).eval()
    idx = tokens(B, 3, high=BLOCK)
    for start in range(0, BLOCK - 3 + 1):
        x = embed(emb, idx, start)
        want = expected(emb, idx, start)
        assert torch.equal(x, want), (
            f"with start={start} the tokens sit at positions {start} .. {start + 2}: use "
            f"torch.arange(start, start + T) for the position rows"
        )


@pytest.mark.parametrize("length", [1, BLOCK], ids=["T=1", "T=block_size"])
def test_sequences_up_to_block_size_are_accepted(step, length):
    emb = make(step).eval()
    idx = tokens(B, length)
    x = embed(emb, idx)
    assert tuple(x.shape) == (B, length, C), f"expected shape {(B, length, C)} for T={length}, got {tuple(x.shape)}"
    assert torch.equal(x, expected(emb, idx)), (
        f"for T={length}, x[b, t] should be wte[idx[b, t]] + wpe[t]"
    )
    x = embed(emb, idx[:, :1], start=BLOCK - 1)
    assert torch.equal(x, expected(emb, idx[:, :1], BLOCK - 1)), (
        f"one token at start={BLOCK - 1} uses the last position row, wpe[{BLOCK - 1}]: start + T == block_size "
        f"is allowed"
    )


@pytest.mark.parametrize("length, start", [(BLOCK + 1, 0), (3 * BLOCK, 0), (2, BLOCK - 1), (1, BLOCK)],
                         ids=["T=block_size+1", "T=3*block_size", "start+T=block_size+1", "start=block_size"])
def test_too_long_a_sequence_is_refused_with_a_clear_message(step, length, start):
    emb = make(step).eval()
    idx = tokens(B, length)
    where = f"T={length} tokens from start={start}, with block_size={BLOCK},"
    try:
        emb(idx, start)
    except ValueError as error:
        message = str(error)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(
            f"{where} raised {type(error).__name__}, not ValueError\n"
            f"Check start + T > block_size yourself and raise ValueError naming block_size"
        ) from error
    else:
        raise AssertionError(f"{where} was accepted: raise ValueError when start + T > block_size")
    assert "block_size" in message and re.search(rf"\b{BLOCK}\b", message), (
        f"the ValueError should name block_size and its value ({BLOCK}) so the user knows the limit; "
        f"got: {message!r}"
    )


def test_gradients_reach_both_tables_and_only_the_rows_used(step):
    emb = make(step)
    idx = torch.tensor([[1, 4, 4], [9, 1, 0]])  # tokens 0, 1, 4, 9 used; positions 0, 1, 2 used
    weights = torch.randn(2, 3, C, generator=torch.Generator().manual_seed(2))
    (embed(emb, idx) * weights).sum().backward()
    wte_grad, wpe_grad = emb.wte.weight.grad, emb.wpe.weight.grad
    assert wte_grad is not None and wpe_grad is not None, (
        "no gradient reached the tables: are wte and wpe nn.Embedding layers used in forward (no .detach())?"
    )
    used_tokens, used_positions = {0, 1, 4, 9}, {0, 1, 2}
    for row in range(VOCAB):
        nonzero = wte_grad[row].abs().sum().item() > 0
        assert nonzero == (row in used_tokens), (
            f"wte row {row} {'got no' if not nonzero else 'got a'} gradient, but token {row} "
            f"{'is' if row in used_tokens else 'is not'} in the input: only the rows of the tokens used should learn"
        )
    for row in range(BLOCK):
        nonzero = wpe_grad[row].abs().sum().item() > 0
        assert nonzero == (row in used_positions), (
            f"wpe row {row} {'got no' if not nonzero else 'got a'} gradient with T=3: only the position rows "
            f"0 .. T-1 should learn (look wpe up by position)"
        )
    want = weights[0, 0] + weights[1, 0]  # position 0 appears once per sequence of the batch
    assert torch.allclose(wpe_grad[0], want, atol=1e-6), (
        "the gradient of wpe[0] should sum over the batch: add the (T, C) position vectors to every sequence"
    )


def test_dropout_acts_in_training_and_not_in_eval(step):
    emb = make(step, dropout=0.5)
    idx = tokens(4, BLOCK)
    clean = expected(emb, idx)
    emb.train()
    x = embed(emb, idx)
    zeros = (x == 0).float().mean().item()
    assert 0.3 < zeros < 0.7, (
        f"no dropout in training: with dropout=0.5 about half the numbers should be 0, got {zeros:.0%}; "
        f"apply self.drop (nn.Dropout(config.dropout)) to the sum"
    )
    kept = x != 0
    assert torch.allclose(x[kept], 2 * clean[kept], atol=1e-5), (
        "dropout=0.5 should scale the kept numbers by 1 / (1 - 0.5) = 2: use nn.Dropout, applied once to the sum"
    )
    emb.eval()
    assert torch.equal(embed(emb, idx), clean), (
        "dropout is still active in eval mode: use nn.Dropout (a module), which turns itself off after .eval()"
    )
