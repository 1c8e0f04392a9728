"""Text from a model, made safe to print: no character that could command the terminal.

A model repeats what it was trained on, and a shared checkpoint may have been trained on text full of escape
sequences (which set the window title, clear the screen or move the cursor) or of carriage returns and
backspaces (which overwrite what was printed). Every such character is dropped, one character at a time, so that
cleaning a text and cleaning its start agree: a stream printed piece by piece stays consistent.
"""

import unicodedata

KEEP = {"\n", "\t"}
# Characters that reorder what follows them on screen (bidirectional overrides and isolates).
REORDER = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def printable(text: str) -> str:
    """`text` without control characters (newline and tab stay) and without bidirectional overrides."""
    return "".join(ch for ch in text if ch in KEEP or not (unicodedata.category(ch) == "Cc" or ch in REORDER))
