"""Training progress for a person: a bar that moves inside each epoch, and one line per finished epoch.

It reads the events of step 9's `train(callback=...)`. In a terminal the bar redraws in place ten times a
second at most; in a log (no terminal) a long epoch reports every quarter instead, so logs stay short.
"""

import sys
import time

from .ui import UI

BAR = 20


def bar(fraction: float, width: int = BAR) -> str:
    """0.25 -> '[#####...............]'"""
    filled = max(0, min(width, round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def fmt(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"


class TrainingView:
    def __init__(self, ui: UI, epochs: int, steps_per_epoch: int):
        self.ui = ui
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.live = ui.out.is_terminal
        self._last_draw = 0.0
        self._quarter = 0
        self._drawn = False

    def update(self, event: dict, note: str = "") -> None:
        """Show one event of train(); `note` ends an epoch's line (such as "saved")."""
        if event["kind"] == "step":
            self._step(event)
        else:
            self._epoch(event, note)

    def _step(self, e: dict) -> None:
        fraction = e["step"] / e["steps_per_epoch"]
        head = f"epoch {e['epoch'] + 1:>{len(str(self.epochs))}}/{self.epochs} {bar(fraction)} " \
               f"{e['step']}/{e['steps_per_epoch']}  loss {e['loss']:.3f}  {e['elapsed']:.0f} s"
        if self.live:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or e["step"] == e["steps_per_epoch"]:
                sys.stdout.write("\r" + head + "\x1b[K")
                sys.stdout.flush()
                self._last_draw, self._drawn = now, True
        elif e["steps_per_epoch"] >= 200:  # a long epoch: say something every quarter
            quarter = int(fraction * 4)
            if quarter > self._quarter and quarter < 4:
                self._quarter = quarter
                self.ui.plain(head)

    def _epoch(self, e: dict, note: str) -> None:
        self._quarter = 0
        if self._drawn:
            sys.stdout.write("\r\x1b[K")
            self._drawn = False
        ppl = "  -  " if e["val_ppl"] is None else f"{e['val_ppl']:.1f}"
        line = (f"epoch {e['epoch'] + 1:>{len(str(self.epochs))}}/{self.epochs} {bar(1.0)}  "
                f"train {fmt(e['train_loss'])}  val {fmt(e['val_loss'])}  ppl {ppl}  {e['elapsed']:.1f} s")
        self.ui.plain(f"{line}  {note}" if note else line)

    def close(self) -> None:
        if self._drawn:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()
            self._drawn = False
