"""The story of a training run: every step's loss, learning rate and gradient norm, every epoch's validation loss.

`course.py train` records it as the run goes, keeps it in the checkpoint (train_state.pt, beside the
optimizer's state: each save holds the history up to the epoch it saves, which is where --resume continues),
and ends by drawing it: a chart in the terminal and a PNG beside the checkpoint folder.

    checkpoint/                  the model, and in its train_state.pt the history up to its epoch
    checkpoint.loss_curve.png    the loss curve of the last run (kata/charts.py)

Step 9's train_step returns only the loss, so the gradient norm is read here: a hook on every parameter adds
up the squares of its gradient as backward leaves it, before clipping, which is the norm clipping compares
with its limit. That is one sum per parameter per step, a small part of what backward itself does.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import charts
from .errors import UserError
from .ui import UI, escape

FIELDS = ("loss", "lr", "grad_norm", "val_loss", "val_step")


@dataclass
class History:
    loss: list[float] = field(default_factory=list)       # per step, as train_step returned it
    lr: list[float] = field(default_factory=list)         # per step, the learning rate it used
    grad_norm: list[float] = field(default_factory=list)  # per step, before clipping (NaN where not measured)
    val_loss: list[float] = field(default_factory=list)   # per epoch (NaN where there was no validation)
    val_step: list[int] = field(default_factory=list)     # per epoch, the number of steps taken by its end

    @classmethod
    def from_extra(cls, extra: dict) -> "History":
        """The history a checkpoint's extra data holds; an empty one for a checkpoint saved without it."""
        saved = extra.get("history")
        if not isinstance(saved, dict):
            return cls()
        try:
            columns = {name: [float(v) for v in saved.get(name, [])] for name in FIELDS}
            columns["val_step"] = [int(v) for v in columns["val_step"]]
        except (TypeError, ValueError, OverflowError):  # not a history train wrote: the run starts a new one
            return cls()
        return cls(**columns)

    def as_extra(self) -> dict:
        """Plain lists of numbers, which the checkpoint's weights-only loading accepts."""
        return {name: list(getattr(self, name)) for name in FIELDS}

    def add(self, event: dict, grad_norm: float = math.nan) -> None:
        """One event of step 9's train(): a step's numbers, or an epoch's validation loss."""
        if event["kind"] == "step":
            self.loss.append(float(event["loss"]))
            self.lr.append(float(event["lr"]))
            self.grad_norm.append(float(grad_norm))
        else:
            self.val_loss.append(math.nan if event["val_loss"] is None else float(event["val_loss"]))
            self.val_step.append(len(self.loss))

    def curves(self) -> tuple[dict, dict]:
        """(series, positions) for kata/charts.py: the steps' loss, and each epoch's validation loss at its end."""
        steps = list(range(1, len(self.loss) + 1))  # the loss of step 1 is the first one
        return ({"train loss": self.loss, "validation loss": self.val_loss},
                {"train loss": steps, "validation loss": self.val_step})

    def chart(self, width: int = 72) -> str:
        series, xs = self.curves()
        return charts.line_chart(series, width=width, height=12, title="Loss, step by step", xs=xs)

    def save_png(self, path: Path) -> Path | None:
        series, xs = self.curves()
        return charts.save_lines_png(series, path, title="Loss, step by step", xs=xs)


def picture_path(directory: Path) -> Path:
    """checkpoint/ -> checkpoint.loss_curve.png: beside the folder, since a checkpoint folder holds only its own
    files (step 11's is_checkpoint_folder)."""
    return directory.with_name(directory.name + ".loss_curve.png")


def show(ui: UI, history: History, directory: Path) -> None:
    """The loss curve at the end of a run: drawn in the terminal, and saved as a PNG where matplotlib is."""
    ui.say("\n[bold]The loss curve[/bold]")
    ui.plain(history.chart(width=min(72, ui.out.width - 1)))
    try:
        saved = history.save_png(picture_path(directory))
    except (UserError, OSError) as e:
        ui.say(escape(f"No picture: {e}."))
        return
    ui.say(escape(f"The same as a picture: {saved}" if saved else f"No picture: {charts.NO_PICTURES}."))


class GradNorm:
    """The global L2 norm of the gradients of each backward pass, read before anything clips them."""

    def __init__(self, model):
        self._squares = []
        for p in model.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._add)

    def _add(self, parameter) -> None:
        self._squares.append(parameter.grad.detach().float().pow(2).sum())

    def take(self) -> float:
        """The norm since the last take (NaN when no backward ran), and start again."""
        if not self._squares:
            return math.nan
        import torch

        total = torch.stack([s.to(self._squares[0].device) for s in self._squares]).sum()
        self._squares = []
        return math.sqrt(total.item())


class Recording:
    """Step 11's checkpoint functions, with the history added to the extra data of every save.

    kata/rotation.py saves through `ckpt.write_checkpoint(folder, model, tokenizer, extra=...)`; given this in
    place of step 11's module, each checkpoint also keeps the history up to the epoch it saves."""

    def __init__(self, ckpt, history: History):
        self._ckpt = ckpt
        self.history = history

    def write_checkpoint(self, folder, model, tokenizer, extra: dict | None = None) -> None:
        self._ckpt.write_checkpoint(folder, model, tokenizer, {**(extra or {}), "history": self.history.as_extra()})

    def __getattr__(self, name: str):
        return getattr(self._ckpt, name)
