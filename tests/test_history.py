"""A training run keeps its story: each step's loss, learning rate and gradient norm and each epoch's validation
loss go into the checkpoint, --resume continues them, and the run ends with the curve in the terminal and as a
PNG beside the checkpoint."""

import math

import pytest
import torch
from course_helpers import TINY, run_course

pytestmark = pytest.mark.timeout(180)



def history(repo) -> dict:
    return torch.load(repo / "checkpoint/train_state.pt", weights_only=True)["history"]


def test_the_history_is_kept_continued_on_resume_and_drawn(repo):
    lines = (repo / "data/corpus_en.txt").read_text().splitlines()[:150]
    (repo / "small.txt").write_text("\n".join(lines) + "\n")
    out = run_course(repo, "train", "small.txt", "--epochs", "2", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    first = history(repo)
    steps = len(first["loss"])
    assert steps > 0 and len(first["lr"]) == len(first["grad_norm"]) == steps
    assert len(first["val_loss"]) == 2 and first["val_step"] == [steps // 2, steps]
    assert all(math.isfinite(v) and v > 0 for v in first["loss"] + first["grad_norm"] + first["val_loss"])
    assert first["lr"][0] < max(first["lr"]), "the warm-up shows in the learning rates"
    # The terminal chart: a titled plot with axes, not a table of numbers.
    assert "The loss curve" in out.stdout and "Loss, step by step" in out.stdout
    assert "The same as a picture: checkpoint.loss_curve.png" in out.stdout, out.stdout
    image = pytest.importorskip("matplotlib.image").imread(str(repo / "checkpoint.loss_curve.png"))
    assert image.shape[:2] == (450, 800) and image[..., :3].var() > 1e-3

    out = run_course(repo, "train", "small.txt", "--resume", "--epochs", "3", *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    resumed = history(repo)
    assert resumed["loss"][:steps] == first["loss"], "--resume continues the history it found"
    assert len(resumed["loss"]) == steps * 3 // 2 and len(resumed["val_loss"]) == 3
    assert resumed["val_step"] == [*first["val_step"], len(resumed["loss"])]
