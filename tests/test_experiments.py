"""`course.py experiment`: every experiment runs with --quick and shows its table, curves, picture and verdict; the
swapped parts really are what they claim to be; the output fits an 80-column terminal."""

import math
import re
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from course_helpers import course_env, run_course

from kata.experiments import attention, baselines, blocks, positions
from kata.experiments.table import EXPERIMENTS
from kata.loader import load_steps

pytestmark = pytest.mark.timeout(180)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(scope="module")
def steps():
    return load_steps(False)


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_every_experiment_runs_quick_and_shows_its_table_curves_picture_and_verdict(experiment, tmp_path, capsys):
    from kata.cli import main

    code = main(["experiment", experiment.name, "--quick", "--reference", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert experiment.title[0] in out and "parameters" in out and "bits/char" in out, out
    assert "What to notice" in out and f"Expected: {experiment.expected[0]}. Showed: " in out, out
    rows = out.split("-----", 1)[1].splitlines()[1:]
    assert len([r for r in rows if r.strip() and not r.startswith(" ")]) >= 2, "one row a variant, at least two"
    picture = tmp_path / f"{experiment.name}.png"
    image = pytest.importorskip("matplotlib.image").imread(str(picture))
    assert image.shape[:2] == (450, 800) and image[..., :3].var() > 1e-3, "the picture is drawn, not blank"
    assert "Traceback" not in out


def test_the_list_and_a_mistyped_name(repo):
    out = run_course(repo, "experiment", "--list")
    assert out.returncode == 0 and all(e.name in out.stdout for e in EXPERIMENTS), out.stdout
    out = run_course(repo, "experiment", "hedas")
    assert out.returncode == 2 and "there is no experiment 'hedas': did you mean heads?" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_the_output_fits_80_columns_in_a_terminal(repo):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["course.py", "experiment", "scale", "--quick", "--reference"],
                          cwd=str(repo), encoding="utf-8", timeout=120, dimensions=(24, 80),
                          env=course_env(TERM="xterm", COLUMNS="80", LINES="24"))
    child.expect(pexpect.EOF)
    child.close()
    text = ANSI.sub("", child.before)
    assert child.exitstatus == 0, text
    assert "Showed:" in text and "/ sqrt(hs)" in text
    wide = [line for line in text.split("\n") if len(line) > 80]
    assert not wide, "lines wider than the terminal:\n" + "\n".join(wide)


def tiny_gpt(steps, swap=None, seed=0, n_layer=2):
    torch.manual_seed(seed)
    model = steps.gpt.GPT(steps.config.GPTConfig(block_size=8, vocab_size=50, n_layer=n_layer, n_head=2, n_embd=16,
                                                 d_ff=32, dropout=0.0))
    if swap is not None:
        swap(model)
    return model.eval()


def test_without_positions_the_order_of_the_earlier_tokens_cannot_matter(steps):
    """One layer: the last position attends to the earlier ones as a set. (With more layers the causal mask
    leaves a trace of order: an earlier position sees only its own prefix.)"""
    idx = torch.tensor([[3, 17, 5, 42, 8, 21, 9]])
    shuffled = torch.cat([idx[:, :-1][:, [4, 2, 0, 5, 1, 3]], idx[:, -1:]], dim=1)
    with torch.no_grad():
        plain = tiny_gpt(steps, positions.without_positions, n_layer=1)
        assert torch.allclose(plain(idx)[0][0, -1], plain(shuffled)[0][0, -1], atol=1e-5), (
            "with no position table the last position sees a set of earlier tokens, not a sequence")
        learned = tiny_gpt(steps, n_layer=1)
        assert not torch.allclose(learned(idx)[0][0, -1], learned(shuffled)[0][0, -1], atol=1e-3)
        assert sum(p.numel() for p in plain.parameters()) == sum(
            p.numel() for p in learned.parameters()) - 8 * 16, "the variant is smaller by the position table"


def test_the_sinusoids_are_the_fixed_waves_and_learn_nothing(steps):
    table = positions.sinusoids(6, 4)
    for pos in range(6):
        for i in range(2):
            f = 10000 ** (-2 * i / 4)
            assert math.isclose(table[pos, 2 * i], math.sin(pos * f), abs_tol=1e-6)
            assert math.isclose(table[pos, 2 * i + 1], math.cos(pos * f), abs_tol=1e-6)
    model = tiny_gpt(steps, positions.with_sinusoids)
    assert not any("wpe" in name for name, _ in model.named_parameters()), "the table is a buffer, not trained"
    waves = model.transformer.emb.wpe.table
    assert torch.allclose(waves, positions.WAVE_SCALE * positions.sinusoids(8, 16))
    assert 0.01 < waves.std().item() < 0.03, "the waves start at the learned table's size (std 0.02), not at 1"


def test_no_residual_has_no_path_around_a_sublayer_and_post_norm_normalises_last(steps):
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3))
    model = tiny_gpt(steps)
    block = model.transformer.h[0]
    with torch.no_grad():
        for sub in (block.attn, block.mlp):  # the sublayers now add nothing
            sub.c_proj.weight.zero_()
            sub.c_proj.bias.zero_()
        assert torch.allclose(block(x), x), "the reference block passes x around its sublayers"
        assert torch.allclose(blocks.NoResidual(block)(x), torch.zeros_like(x)), "NoResidual has no skip path"
        y = blocks.PostNorm(tiny_gpt(steps).transformer.h[0])(x)
        assert torch.allclose(y.mean(-1), torch.zeros(2, 5), atol=1e-5), "post-norm ends with a LayerNorm"
        assert torch.allclose(y.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3)


def test_the_attention_scale_divides_the_scores_as_named(steps):
    assert attention.factor("sqrt", 16) == 1.0
    assert math.isclose(attention.factor("hs", 16), 0.25) and math.isclose(attention.factor("none", 16), 4.0)
    idx = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        outputs = {}
        for scale in attention.SCALES:
            model = tiny_gpt(steps, lambda m, s=scale: attention.rescale_attention(m, s))
            outputs[scale] = model(idx)[0]
        # Scores scaled by 1/sqrt(hs) times the factor: with q multiplied, the softmax sees other scores.
        assert not torch.allclose(outputs["sqrt"], outputs["hs"]) and not torch.allclose(outputs["sqrt"], outputs["none"])


def test_the_bigram_baseline_scores_the_counted_cross_entropy(steps):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 6, size=400).astype(np.uint16)
    held = rng.integers(0, 6, size=101).astype(np.int64)
    config = steps.config.GPTConfig(block_size=100, vocab_size=6, n_layer=1, n_head=1, n_embd=8)
    model = baselines.CountingBigram(config, tokens, 0.5)
    pairs = Counter(zip(tokens[:-1].tolist(), tokens[1:].tolist()))
    firsts = Counter(tokens[:-1].tolist())
    want = -sum(math.log((pairs[(a, b)] + 0.5) / (firsts[a] + 0.5 * 6)) for a, b in zip(held[:-1], held[1:])) / 100
    _, loss = model(torch.from_numpy(held[:-1])[None], torch.from_numpy(held[1:])[None])
    assert math.isclose(loss.item(), want, rel_tol=1e-5), (loss.item(), want)


def test_the_lstm_has_the_parameters_its_formula_says(steps):
    config = steps.config.GPTConfig(block_size=8, vocab_size=512, n_layer=2, n_head=1, n_embd=100)
    model = baselines.LSTMModel(config)
    assert sum(p.numel() for p in model.parameters()) == baselines.lstm_parameters(512, 100, 2) == 212_800
