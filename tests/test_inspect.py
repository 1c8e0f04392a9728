"""`course.py inspect` on a checkpoint trained here: what it prints, in a terminal of 80 columns, and each of
its computations against an oracle written in this file from the model's own weights."""

import math
import re
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from course_helpers import course_env, run_course

from kata import inside
from kata.loader import load_steps

pytestmark = pytest.mark.timeout(180)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
SMALL = ["--d_model", "32", "--n_heads", "4", "--n_layers", "2", "--d_ff", "64", "--block_size", "16",
         "--bpe_vocab_size", "300", "--batch_size", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pristine_repo):
    repo = tmp_path_factory.mktemp("inspect") / "write-transformer"
    shutil.copytree(pristine_repo, repo)
    (repo / "small.txt").write_text("\n".join((repo / "data/corpus_en.txt").read_text().splitlines()[:150]))
    out = run_course(repo, "train", "small.txt", "--epochs", "2", *SMALL)
    assert out.returncode == 0, out.stdout + out.stderr
    return repo


@pytest.fixture(scope="module")
def loaded(trained):
    steps = load_steps(False)
    model, tokenizer, _ = steps.checkpoint.load_checkpoint(trained / "checkpoint")
    return steps, model.eval(), tokenizer


def test_inspect_shows_every_part_and_fits_80_columns(trained):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["course.py", "inspect", "The cat sat", "--reference"], cwd=str(trained),
                          encoding="utf-8", timeout=120, dimensions=(24, 80),
                          env=course_env(TERM="xterm", COLUMNS="80", LINES="24"))
    child.expect(pexpect.EOF)
    child.close()
    text = ANSI.sub("", child.before)
    assert child.exitstatus == 0, text
    for part in ("The prompt, as the tokenizer cuts it", "characters per token", "Attention of layer 1, head 0",
                 "The next token", "The logit lens", "the last block's lens equals the model's own output: yes",
                 "Nearest neighbours of", "Gradient flow"):
        assert part in text, f"{part!r} missing:\n{text}"
    assert "Traceback" not in text
    wide = [line for line in text.split("\n") if len(line) > 80]
    assert not wide, "lines wider than the terminal:\n" + "\n".join(wide)
    image = pytest.importorskip("matplotlib.image").imread(str(trained / "lab" / "attention.png"))
    assert image.shape[:2] == (2 * 240, 4 * 240), "one cell per layer (2) and head (4)"
    assert image[..., :3].var() > 1e-3


@pytest.mark.parametrize("args, said", [
    (["--layer", "5"], "the model has layers 0 .. 1 and heads 0 .. 3"),
    (["--checkpoint", "nowhere"], "no checkpoint in nowhere/"),
    (["--token", "The cat sat"], "tokens in this tokenizer: give a piece that is one token"),
])
def test_bad_requests_get_one_sentence(trained, args, said):
    out = run_course(trained, "inspect", "The cat", "--reference", *args)
    assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr


def by_hand_attention(model, ids):
    """Layer by layer, from the weights: ln_1, c_attn, q k^T / sqrt(hs), the causal mask, softmax."""
    maps = []
    with torch.no_grad():
        x = model.transformer.emb(torch.tensor([ids]), 0)
        for block in model.transformer.h:
            C, H = model.config.n_embd, model.config.n_head
            q, k, _ = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)
            T = len(ids)
            q = q.view(1, T, H, C // H).transpose(1, 2)
            k = k.view(1, T, H, C // H).transpose(1, 2)
            scores = q @ k.transpose(-2, -1) / math.sqrt(C // H)
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
            maps.append(F.softmax(scores, dim=-1)[0])
            x = block(x)
    return torch.stack(maps)


def test_the_attention_maps_are_the_models_own(loaded):
    steps, model, tokenizer = loaded
    ids = tokenizer.encode("The cat sat on the mat")
    maps = inside.attention_maps(model, ids)
    assert maps.shape == (2, 4, len(ids), len(ids))
    assert torch.allclose(maps, by_hand_attention(model, ids), atol=1e-5)
    assert all(getattr(b.attn, "flash", True) for b in model.transformer.h), "the fused path is put back"


def test_the_logit_lens_ends_at_the_models_output(loaded):
    steps, model, tokenizer = loaded
    ids = tokenizer.encode("The cat")
    rows, gap = inside.logit_lens(model, ids, top=3)
    with torch.no_grad():
        want = torch.softmax(model(torch.tensor([ids]))[0][0, -1], dim=-1).topk(3)
    assert [i for i, _ in rows[-1]] == want.indices.tolist() and gap < 1e-5
    assert len(rows) == model.config.n_layer


def test_the_next_token_table_applies_the_filters_it_names(loaded):
    steps, model, tokenizer = loaded
    ids = tokenizer.encode("The cat")
    rows, kept = inside.next_token(steps, model, ids, 0.8, 3, 0.5, top=8)
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0][0, -1]
    probs = torch.softmax(logits, dim=-1)
    order = torch.argsort(probs, descending=True).tolist()
    assert [r[0] for r in rows] == order[:8]
    for rank, (i, p, hot, by_k, _, _) in enumerate(rows):
        assert math.isclose(p, probs[i].item(), rel_tol=1e-5)
        assert math.isclose(hot, torch.softmax(logits / 0.8, dim=-1)[i].item(), rel_tol=1e-5)
        assert by_k == (rank < 3)
    def nucleus(probabilities):  # a token is kept while the mass before it is below p
        return int((probabilities.cumsum(0) - probabilities < 0.5).sum())

    hot = torch.softmax(logits / 0.8, dim=-1).sort(descending=True).values
    assert [r[4] for r in rows] == [rank < nucleus(hot) for rank in range(8)]
    # sample_next's order: top-k first, then top-p on what is left, renormalised
    assert kept == nucleus(hot[:3] / hot[:3].sum())
    assert [r[5] for r in rows] == [rank < kept for rank in range(8)]


def test_neighbours_are_the_closest_rows_by_cosine(loaded):
    steps, model, tokenizer = loaded
    table = model.transformer.emb.wte.weight.detach()
    token = tokenizer.encode(" the")[-1]
    got = inside.neighbours(model, token, k=5)
    cos = F.cosine_similarity(table, table[token][None], dim=1)
    cos[token] = -2
    assert [i for i, _ in got] == cos.topk(5).indices.tolist()


def test_gradient_flow_measures_both_models_on_one_batch(loaded):
    steps, model, tokenizer = loaded
    tokens = steps.data.as_token_array(tokenizer.encode("The cat sat on the warm mat by the door. " * 20),
                                       tokenizer.vocab_size)
    with_res, without = inside.gradient_flow(steps, model, tokens, model.config.block_size)
    assert len(with_res) == len(without) == model.config.n_layer
    assert all(v > 0 and math.isfinite(v) for v in with_res + without)
    assert with_res != without, "removing the residual path changes the gradients"
    assert all(p.grad is None for p in model.parameters()) and not model.training, "the model is left as it was"
