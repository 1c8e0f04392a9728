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
        now, key = wait_for_change_or_key(folder, before, keys)
        if key is None:
            return now
        if key in ("q", ""):  # q, or the end of the input
            return None


class Keys:
    """Single key presses without Enter, where there is a terminal; otherwise just a pause."""

    def __init__(self, interactive: bool):
        self.interactive = interactive
        self._saved = None

    @contextmanager
    def raw(self):
        if not self.interactive or sys.platform == "win32":
            yield self
            return
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            yield self
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    @contextmanager
    def cooked(self):
        """Lines with Enter again for a while (a quiz, a question), then back to single keys."""
        if self._saved is None:
            yield
            return
        import termios
        import tty

        fd = sys.stdin.fileno()
        termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
        try:
            yield
        finally:
            tty.setcbreak(fd)

    def pressed(self, key: str, timeout: float) -> bool:
        """True when `key` is pressed within `timeout` seconds (or the input ends)."""
        char = self.read(timeout)
        return char is not None and (char == "" or char == key)

    def read(self, timeout: float | None) -> str | None:
        """The key pressed within `timeout` seconds (None: wait for ever), lower-cased; "" when the input
        ends; None when no key came."""
        if not self.interactive:
            if timeout is not None:
                time.sleep(timeout)
            return None
        if sys.platform == "win32":
            import msvcrt

            end = None if timeout is None else time.monotonic() + timeout
            while end is None or time.monotonic() < end:
                if msvcrt.kbhit():
                    return msvcrt.getwch().lower()
                time.sleep(0.05)
            return None
        import select

        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            return None
        return sys.stdin.read(1).lower()


def wait_for_change_or_key(folder: Path, before: dict, keys: Keys) -> tuple[dict, str | None]:
    """Block until a file under `folder` changes (the new snapshot, None) or a key is pressed (before, key)."""
    while True:
        char = keys.read(POLL_SECONDS)
        if char is not None:
            return before, char
        now = snapshot(folder)
        if now != before:
            while True:  # settle, as wait_for_change does
                time.sleep(SETTLE_SECONDS)
                later = snapshot(folder)
                if later == now:
                    return now, None
                now = later
