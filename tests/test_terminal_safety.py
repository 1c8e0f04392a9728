"""Text a model generates reaches the terminal without anything that could command it."""

import torch

from kata import chat
from kata.safetext import printable

HOSTILE = "a\x1b]0;pwned\x07b\x1b[2Jc\rd\x08e\x9bf\u202eg\x00h\x7fi"


def test_control_and_escape_characters_are_dropped_and_the_rest_kept():
    assert printable(HOSTILE) == "a]0;pwnedb[2Jcdefghi"
    assert printable("Zażółć gęślą jaźń 🙂 漢字\n\tend") == "Zażółć gęślą jaźń 🙂 漢字\n\tend"


def test_cleaning_a_stream_piece_by_piece_agrees_with_cleaning_it_whole():
    # chat prints each token as it comes: the clean start of a text must be the start of the clean text
    for cut in range(len(HOSTILE) + 1):
        assert printable(HOSTILE).startswith(printable(HOSTILE[:cut]))


def test_chat_prints_no_escape_sequence_a_model_generates(capsys):
    # A tokenizer whose every token decodes to escape sequences stands in for a model trained on ANSI text.
    class Tokenizer:
        def decode(self, ids):
            return "".join("\x1b]0;title\x07\x1b[2J" + chr(65 + i) for i in ids)

    chat._stream(None, Tokenizer(), iter(torch.tensor([[[1]], [[2]], [[3]]])), "hi")
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown, repr(shown)
    assert shown == "hi]0;title[2JB]0;title[2JC]0;title[2JD\n", repr(shown)
