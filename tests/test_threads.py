"""The thread count for training is measured by a short probe, which leaves the run exactly as it was."""

import pytest
import torch

from kata.threads import candidates, choose_threads


def test_candidates_are_powers_of_two_and_every_core():
    assert candidates(1) == [1]
    assert candidates(2) == [1, 2]
    assert candidates(6) == [1, 2, 4, 6]
    assert candidates(8) == [1, 2, 4, 8]


def test_the_probe_changes_no_random_stream_no_gradient_and_no_mode():
    solutions = pytest.importorskip("solutions.step08_gpt")
    config = solutions.GPTConfig(block_size=8, vocab_size=300, n_layer=1, n_head=2, n_embd=16, d_ff=32,
                                 dropout=0.1)
    torch.manual_seed(0)
    model = solutions.GPT(config).eval()
    x = torch.randint(0, 300, (4, 8))
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the test runner may have pinned one thread
    try:
        n, why = choose_threads(model, (x, x), torch)
        assert torch.equal(torch.get_rng_state(), before), "dropout in the probe must not move the seed's stream"
        assert all(p.grad is None for p in model.parameters()), "the probe leaves no gradients behind"
        assert not model.training, "the model's mode is as it was"
        assert n in (1, 2) and torch.get_num_threads() == n
        assert "ms" in why
    finally:
        torch.set_num_threads(threads)
