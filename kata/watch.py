"""`course.py watch`: run the checks again whenever a file under exercises/ is saved.

It polls file times and sizes about once a second instead of waiting for file-system events, so it works the
same on network drives, WSL and editors that save by renaming. A burst of saves counts as one change.
"""

import sys
import time
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 1.0
SETTLE_SECONDS = 0.3  # debounce: wait for the files to stop changing before running the checks


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    state = {}
    for path in folder.rglob("*.py"):
        try:
            st = path.stat()
        except OSError:  # deleted between listing and looking: the next poll sees it gone
            continue
        state[str(path)] = (st.st_mtime_ns, st.st_size)
    return state


def wait_for_change(folder: Path, before: dict, keys) -> dict | None:
    """Block until the files change (returns the new snapshot) or the learner presses q (returns None)."""
    while True:
        if keys.pressed("q", POLL_SECONDS):
            return None
        now = snapshot(folder)
        if now != before:
            while True:  # settle: an editor may write a file in several steps
                time.sleep(SETTLE_SECONDS)
                later = snapshot(folder)
                if later == now:
                    return now
                now = later


class Keys:
    """Single key presses without Enter, where there is a terminal; otherwise just a pause."""

    def __init__(self, interactive: bool):
        self.interactive = interactive

    @contextmanager
    def raw(self):
        if not self.interactive or sys.platform == "win32":
            yield self
            return
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            yield self
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def pressed(self, key: str, timeout: float) -> bool:
        if not self.interactive:
            time.sleep(timeout)
            return False
        if sys.platform == "win32":
            import msvcrt

            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if msvcrt.kbhit() and msvcrt.getwch().lower() == key:
                    return True
                time.sleep(0.05)
            return False
        import select

        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if ready:
            char = sys.stdin.read(1)
            if char == "":  # end of input
                return True
            return char.lower() == key
        return False
