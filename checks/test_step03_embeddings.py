"""Checks for step 3: token and positional embeddings.

Most checks use a tiny configuration with distinct sizes (B=2, T=5, n_embd=12, vocab_size=11, block_size=7),
so that a swapped axis cannot pass by accident.

A message names a mistake only when the check has confirmed it: `outputs_of_mistakes` computes what the usual
wrong lookups give from the layer's own tables, and a cause is named when the output equals exactly one of
them. Otherwise the message says plainly what differs, with numbers.
"""

import re

import pytest
import torch

from _meta_device import on_meta

B, T, C, VOCAB, BLOCK = 2, 5, 12, 11, 7

# The causes a message may name, each only once the check has seen that very mistake's output.
BY_TOKEN = "the position table is looked up with the token ids: index wpe with torch.arange(start, start + T)"
IGNORES_START = "start is ignored: the positions must be start .. start + T - 1"
ONE_BASED = "the positions start at 1 instead of 0: torch.arange(start, start + T)"


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
    return outputs_of_mistakes(emb, idx, start)[None]


def outputs_of_mistakes(emb, idx, start=0):
    """x from the layer's own tables, the right way (under None) and by each usual wrong lookup."""
    wte, wpe = emb.wte.weight.detach(), emb.wpe.weight.detach()
    t = idx.size(1)
    found = {None: wte[idx] + wpe[start:start + t], IGNORES_START: wte[idx] + wpe[:t]}
    if int(idx.max()) < wpe.size(0):
        found[BY_TOKEN] = wte[idx] + wpe[idx]
    if start + t + 1 <= wpe.size(0):
        found[ONE_BASED] = wte[idx] + wpe[start + 1:start + t + 1]
    return found


def cause_of(emb, x, idx, start=0):
    """The one known mistake whose output equals x ("" when none does, or more than one, or x is right)."""
    found = [name for name, want in outputs_of_mistakes(emb, idx, start).items()
             if isinstance(x, torch.Tensor) and x.shape == want.shape and torch.allclose(x, want, atol=1e-6)]
    return f"{found[0]}; " if len(found) == 1 and found[0] is not None else ""


def test_embeddings_have_the_gpt2_names_and_table_shapes(step):
    emb = make(step)
    names = {name: tuple(p.shape) for name, p in emb.named_parameters()}
    if names == {"wte.weight": (BLOCK, C), "wpe.weight": (VOCAB, C)}:
        raise AssertionError(f"the sizes of wte and wpe are swapped: wte needs vocab_size={VOCAB} rows (one per "
                             f"token) and wpe block_size={BLOCK} rows (one per position)")
    if names.get("wte.weight") == (C, VOCAB) or names.get("wpe.weight") == (C, BLOCK):
        raise AssertionError(f"nn.Embedding's arguments reversed: it takes (number of rows, width), "
                             f"nn.Embedding(config.vocab_size, config.n_embd); got {names}")
    assert names == {"wte.weight": (VOCAB, C), "wpe.weight": (BLOCK, C)}, (
        f"expected two tables named as in GPT-2, wte (vocab_size, n_embd) and wpe (block_size, n_embd); got {names}\n"
        f"use nn.Embedding(config.vocab_size, config.n_embd) and nn.Embedding(config.block_size, config.n_embd)"
    )
    frozen = [name for name, p in emb.named_parameters() if not p.requires_grad]
    assert not frozen, f"these tables do not learn (requires_grad is False): {frozen}"


def test_output_has_shape_batch_time_embedding(step):
    emb = make(step).eval()
    idx = tokens(B, T)
    x = emb(idx)
    assert isinstance(x, torch.Tensor), f"forward should return a tensor, got {type(x).__name__}"
    if tuple(x.shape) == (B, T, 2 * C):
        wte, wpe = emb.wte.weight.detach(), emb.wpe.weight.detach()
        if torch.equal(x, torch.cat([wte[idx], wpe[:T].expand(B, T, C)], dim=-1)):
            raise AssertionError(f"the token and position vectors are concatenated instead of added: shape "
                                 f"{tuple(x.shape)}, expected {(B, T, C)}; x = tok_emb + pos_emb")
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
        f"{cause_of(emb, got, idx)}x[b, t] should be wte[idx[b, t]] + wpe[t]: expected {want.tolist()}, "
        f"got {got.tolist()}"
    )
    got = embed(emb, idx, start=1)
    want = torch.tensor([[[32., 42.], [51., 60.]]])
    assert torch.equal(got, want), (
        f"{cause_of(emb, got, idx, 1)}with start=1 the positions are 1 and 2: expected {want.tolist()}, "
        f"got {got.tolist()}"
    )


def test_each_vector_is_its_token_row_plus_its_position_row(step):
    emb = make(step).eval()
    idx = tokens(B, T, high=BLOCK)  # ids below block_size, so that a lookup of wpe by token id runs
    x = embed(emb, idx)
    want = expected(emb, idx)
    assert x.shape == want.shape and torch.equal(x, want), (
        f"{cause_of(emb, x, idx)}x[b, t] should be exactly wte[idx[b, t]] + wpe[t] (in eval mode); largest "
        f"difference: {(x - want).abs().max().item() if x.shape == want.shape else 'the shapes differ'}"
    )


def test_positions_are_looked_up_by_position_not_by_token(step):
    """The same token at every position: the vectors must differ by exactly the rows of wpe."""
    emb = make(step).eval()
    idx = torch.full((1, T), 3)  # token 3 everywhere; token ids below block_size so a mix-up can run
    x = embed(emb, idx)
    wpe = emb.wpe.weight.detach()
    for t in range(1, T):
        assert torch.allclose(x[0, t] - x[0, 0], wpe[t] - wpe[0], atol=1e-6), (
            f"{cause_of(emb, x, idx)}the same token at positions 0 and {t} should differ by wpe[{t}] - wpe[0]; "
            f"they differ by {(x[0, t] - x[0, 0] - wpe[t] + wpe[0]).abs().max().item():.3g} more"
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
        try:
            x = embed(emb, idx, start)
        except RuntimeError as error:
            if start > 0 and "size of tensor" in str(error) and torch.equal(embed(emb, idx, 0), expected(emb, idx)):
                raise AssertionError(f"the positions stop at T instead of start + T: with start={start} and T=3 "
                                     f"there are {max(0, 3 - start)} position rows, not 3; "
                                     f"torch.arange(start, start + T)") from None
            raise
        want = expected(emb, idx, start)
        assert x.shape == want.shape and torch.equal(x, want), (
            f"{cause_of(emb, x, idx, start)}with start={start} the tokens sit at positions {start} .. {start + 2}, "
            f"so x[b, t] = wte[idx[b, t]] + wpe[{start} + t]"
        )


@pytest.mark.parametrize("length", [1, BLOCK], ids=["T=1", "T=block_size"])
def test_sequences_up_to_block_size_are_accepted(step, length):
    emb = make(step).eval()
    idx = tokens(B, length)
    x = embed(emb, idx)
    assert tuple(x.shape) == (B, length, C), f"expected shape {(B, length, C)} for T={length}, got {tuple(x.shape)}"
    assert torch.equal(x, expected(emb, idx)), f"{cause_of(emb, x, idx)}for T={length}, x[b, t] should be wte[idx[b, t]] + wpe[t]"
    x = embed(emb, idx[:, :1], start=BLOCK - 1)
    assert torch.equal(x, expected(emb, idx[:, :1], BLOCK - 1)), (
        f"one token at start={BLOCK - 1} should use the last position row, wpe[{BLOCK - 1}]"
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
    except AssertionError as error:
        raise AssertionError(f"an assert instead of raise ValueError: {where} raised AssertionError; "
                             f"`raise ValueError(...)` names the limit to the caller") from error
    except Exception as error:
        kind = type(error).__name__
        if isinstance(error, IndexError) and start > 0:
            try:
                emb(tokens(B, BLOCK + 1), 0)
            except ValueError:
                raise AssertionError(f"the length check forgets start: T={BLOCK + 1} is refused, but {where} "
                                     f"raised {kind}; refuse start + T > block_size") from error
        if isinstance(error, IndexError) and start == 0:
            raise AssertionError(f"no length check before the lookup: {where} ran past the position table "
                                 f"({kind}); raise ValueError when start + T > block_size") from error
        raise AssertionError(f"{where} raised {kind}, not ValueError") from error
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
    if wte_grad is not None and (wpe_grad is None or not wpe_grad.any()):
        raise AssertionError("wpe learns nothing: no gradient reaches the position table, while wte gets one; "
                             "add self.wpe(pos) without .detach()")
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
            f"0 .. T-1 should learn"
        )
    want = weights[0, 0] + weights[1, 0]  # position 0 appears once per sequence of the batch
    assert torch.allclose(wpe_grad[0], want, atol=1e-6), (
        "the gradient of wpe[0] should sum over the batch: add the (T, C) position vectors to every sequence"
    )


def test_dropout_zeroes_numbers_and_scales_the_rest_in_training(step):
    """dropout=0.25 in training: each number of x becomes 0 (about 25%) or x / 0.75, one dropout on the sum."""
    p = 0.25
    emb = make(step, dropout=p)
    idx = tokens(4, BLOCK)
    clean = expected(emb, idx)
    wte, wpe = emb.wte.weight.detach(), emb.wpe.weight.detach()
    tok, pos = wte[idx], wpe[:BLOCK].expand(4, BLOCK, C)
    emb.train()
    torch.manual_seed(3)
    x = embed(emb, idx)
    if torch.equal(x, clean):
        raise AssertionError(f"no dropout in training: with dropout={p} nothing was dropped; apply self.drop "
                             f"(nn.Dropout(config.dropout)) to the sum")

    def dropped_from(part, whole):  # every number 0 or part / (1 - p), about p of them 0
        zero = part.abs() < 1e-9
        return zero.any() and torch.allclose(part[~zero], whole[~zero] / (1 - p), atol=1e-5) and \
            abs(zero.double().mean().item() - p) < 0.1

    if not dropped_from(x, clean):
        if dropped_from(x - pos, tok):
            raise AssertionError("dropout on the token vectors only: the position vectors are added after it; "
                                 "self.drop(tok_emb + pos_emb)")
        if dropped_from(x - tok, pos):
            raise AssertionError("dropout on the position vectors only: the token vectors are added after it; "
                                 "self.drop(tok_emb + pos_emb)")
        zero = x == 0
        scale = (x[~zero] / clean[~zero]).mean().item()
        if zero.any() and torch.allclose(x[~zero], clean[~zero] * scale, atol=1e-5):
            raise AssertionError(f"the dropout drops with p={1 - 1 / scale:.2g}, not config.dropout={p}: "
                                 f"{zero.double().mean().item():.0%} of the numbers are 0; nn.Dropout(config.dropout)")
        raise AssertionError(f"with dropout={p} each number of x should be 0 (about {p:.0%}) or x / {1 - p:g}; "
                             f"{zero.double().mean().item():.0%} are 0 and the rest differ from x / {1 - p:g}")
    torch.manual_seed(3)
    assert torch.equal(embed(emb, idx), x), "the same torch.manual_seed should drop the same numbers: use nn.Dropout"


def test_nothing_is_dropped_in_eval_mode(step):
    emb = make(step, dropout=0.5)
    idx = tokens(4, BLOCK)
    emb.eval()
    x = embed(emb, idx)
    if not torch.equal(x, expected(emb, idx)):
        zeros = (x == 0).double().mean().item()
        raise AssertionError(
            f"the output still drops in eval mode: {zeros:.0%} of it is 0; nn.Dropout (a module) turns itself off "
            f"after .eval()" if zeros > 0.2 else
            f"{cause_of(emb, x, idx)}in eval mode x should be exactly wte[idx] + wpe[positions]"
        )
    assert not emb.training, "calling the layer switched it back to training mode"


def test_a_call_changes_neither_its_input_nor_the_random_stream(step):
    emb = make(step, dropout=0.5).eval()
    idx = tokens(B, T)
    idx0 = idx.clone()
    rng = torch.get_rng_state()
    x1 = embed(emb, idx)
    assert torch.equal(idx, idx0), "the call changed the token ids it was given"
    assert torch.equal(torch.get_rng_state(), rng), "in eval mode the call drew random numbers"
    assert torch.equal(embed(emb, idx), x1), "two calls on the same ids gave different vectors"


@pytest.mark.parametrize("how", ["idx[:, 1:]", "idx.T of a (T, B) tensor", "batch 1, T 1"])
def test_non_contiguous_and_small_inputs_work(step, how):
    emb = make(step).eval()
    full = tokens(B, T + 1)
    idx = {"idx[:, 1:]": full[:, 1:], "idx.T of a (T, B) tensor": tokens(T, B).T, "batch 1, T 1": full[:1, :1]}[how]
    try:
        x = embed(emb, idx)
    except RuntimeError as error:
        if "view" in str(error) and idx.is_contiguous() is False:
            embed(emb, idx.contiguous())  # the same ids, contiguous: does this work?
            raise AssertionError(f"forward fails on a non-contiguous idx ({how}): "
                                 f"{str(error).splitlines()[0]}; use .reshape, or index without reshaping") from None
        raise
    want = expected(emb, idx)
    assert x.shape == want.shape and torch.equal(x, want), (
        f"{cause_of(emb, x, idx)}for {how} (shape {tuple(idx.shape)}), x should be wte[idx] + wpe[positions]"
    )


def test_float64_tables_give_float64_vectors(step):
    emb = make(step).double().eval()
    idx = tokens(B, T)
    x = embed(emb, idx)
    assert x.dtype == torch.float64, f"with float64 tables (emb.double()) the output is {x.dtype}, not float64"
    assert torch.equal(x, expected(emb, idx)), f"{cause_of(emb, x, idx)}in float64, x differs from wte[idx] + wpe[t]"


def test_runs_on_the_device_of_its_input(step):
    """On the meta device (shapes only): a tensor made without device= would sit on the CPU."""
    emb = make(step).to("meta").eval()
    idx = tokens(B, T).to("meta")
    x = on_meta(lambda: emb(idx, 1), "forward for idx", "idx", "torch.arange(..., device=idx.device)")
    assert x.device.type == "meta" and tuple(x.shape) == (B, T, C), (
        f"on the meta device x should be a meta tensor of shape {(B, T, C)}, got {x.device} {tuple(x.shape)}"
    )
