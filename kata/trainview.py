"""Training progress for a person: a table with one row per epoch, and a bar that moves inside each epoch.

It reads the events of step 9's `train(callback=...)`; course.py train and the step 9 demo both show their
training with it. In a terminal the bar inside an epoch redraws in place, ten times a second at most; in a log
(no terminal) a long epoch reports every quarter instead, so that logs stay short.
"""

import sys
import time

BAR = 20


def bar(fraction: float, width: int = BAR) -> str:
    """0.25 -> '[#####...............]'"""
    filled = max(0, min(width, round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


class TrainingView:
    def __init__(self, epochs: int, steps_per_epoch: int, live: bool = False, write=print):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.live = live          # a terminal: redraw the step bar in place
        self.write = write
        self.width = len(str(epochs))
        self._last_draw = 0.0
        self._quarter = 0
        self._drawn = False

    def header(self) -> None:
        self.write(f"{'epoch':>{2 * self.width + 3}}  {'progress':<{BAR + 2}}  {'train':>6}  {'val':>6}  "
                   f"{'ppl':>7}  {'time':>6}")

    def update(self, event: dict, note: str = "") -> None:
        """Show one event of train(); `note` ends an epoch's row (such as "saved")."""
        if event["kind"] == "step":
            self._step(event)
        else:
            self._epoch(event, note)

    def _step(self, e: dict) -> None:
        fraction = e["step"] / e["steps_per_epoch"]
        line = (f"{e['epoch'] + 1:>{self.width}} / {self.epochs:<{self.width}}  {bar(fraction)}  "
                f"step {e['step']}/{e['steps_per_epoch']}, loss {e['loss']:.3f}, {e['elapsed']:.0f}s")
        if self.live:
            now = time.monotonic()
            if now - self._last_draw >= 0.1:
                sys.stdout.write("\r" + line + "\x1b[K")
                sys.stdout.flush()
                self._last_draw, self._drawn = now, True
        elif e["steps_per_epoch"] >= 200:  # a long epoch in a log: a line every quarter
            quarter = int(fraction * 4)
            if self._quarter < quarter < 4:
                self._quarter = quarter
                self.write(line)

    def _epoch(self, e: dict, note: str) -> None:
        self.close()
        self._quarter = 0
        done = e["epoch"] + 1
        val = "     -" if e["val_loss"] is None else f"{e['val_loss']:6.3f}"
        ppl = "      -" if e["val_ppl"] is None else f"{e['val_ppl']:7.1f}"
        row = (f"{done:>{self.width}} / {self.epochs:<{self.width}}  {bar(done / self.epochs)}  "
               f"{e['train_loss']:6.3f}  {val}  {ppl}  {e['elapsed']:5.1f}s")
        self.write(f"{row}  {note}" if note else row)

    def close(self) -> None:
        """Wipe a half-drawn step bar, so that what follows starts on a clean line."""
        if self._drawn:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()
            self._drawn = False
