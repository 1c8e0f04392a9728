"""Step 1: a byte-level BPE tokenizer, as in GPT-2.

A model reads numbers, not letters. This first step turns text into a list of token ids and back. Every text
is first a list of UTF-8 bytes (ids 0..255), so any character, in any language, can be written down. Training
then finds the pair of neighbouring tokens seen most often, gives it a new id (256, 257, ...) and repeats:
byte pair encoding. Frequent words end up as one token, rare ones stay a few pieces, and nothing is unknown.
Text is first cut into chunks by GPT-2's pattern (words, numbers, punctuation, spaces) so that a merge never
glues the end of one word to the start of the next.
"""

import json
from pathlib import Path

import regex

# GPT-2's pre-split: contractions, then a word, a number or a run of punctuation (each may take one leading
# space), then whitespace. \p{L} is any letter in any script and \p{N} any digit, hence the `regex` package.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)

# What Tokenizer.save writes into its JSON file, so that load can tell one of its files from any other.
TOKENIZER_FORMAT = "write-transformer-bpe"
TOKENIZER_VERSION = 1


def get_stats(ids: list[int], counts: dict | None = None) -> dict[tuple[int, int], int]:
    """Count each pair of neighbours in ids; add into `counts` when it is given (and return it).

    ids=[1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    ids=[7] -> {}   (a single token has no neighbour)
    """
    # TODO: use `counts` (a new dict when it is None); add 1 for each pair of neighbours in zip(ids, ids[1:])
    #       (counts.get(pair, 0) spares a special case for a new pair); return the dict.
    raise NotImplementedError


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of `pair` in ids by the single token idx, left to right.

    ids=[1, 2, 3, 1, 2], pair=(1, 2), idx=4 -> [4, 3, 4]
    ids=[97, 97, 97], pair=(97, 97), idx=256 -> [256, 97]   (subtle: occurrences never overlap)
    """
    # TODO: walk an index i along ids. Where ids[i] and ids[i + 1] are the pair (is there an ids[i + 1]?),
    #       append idx and move i on by 2; otherwise append ids[i] and move on by 1. Return the new list.
    raise NotImplementedError


def split_text(text: str) -> list[str]:
    """Cut text into chunks with GPT2_SPLIT_PATTERN; merges happen inside a chunk, never across.

    "I'm here, 42 times  \\n" -> ["I", "'m", " here", ",", " 42", " times", "  \\n"]
    """
    # TODO: one line: GPT2_SPLIT is the compiled pattern. Which of its methods returns every match, in order,
    #       as a list of strings?
    raise NotImplementedError


class Tokenizer:
    """Byte-level BPE: text <-> token ids.

    merges: {(left id, right id): new id}, learned in order, new ids 256, 257, ...
    vocab:  {id: the bytes it stands for}; 0..255 are the single bytes, a merged id is its pair's bytes joined
    """

    def __init__(self):
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def train(self, text: str, vocab_size: int) -> None:
        """Learn vocab_size - 256 merges from text, starting from the 256 single bytes.

        1. Split text with split_text; each chunk becomes the list of its UTF-8 bytes.
        2. Repeat vocab_size - 256 times: count the pairs inside all chunks (get_stats, adding into one dict);
           take the most frequent pair; give it the next id (256, 257, ...); record it in merges and vocab;
           merge it in every chunk. Stop early when no chunk has a pair left.
        Tie-break: among equally frequent pairs, take the smallest pair as a tuple of ids:
        min(stats, key=lambda p: (-stats[p], p)). So (97, 98) wins over (256, 97) at the same count.
        vocab_size under 256 -> ValueError (there must be one token per byte).

        Example: "aaabdaaabac" (one chunk; a=97, b=98, c=99, d=100), vocab_size=259
            [97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99]
            (97, 97) is seen 4 times                          -> merges[(97, 97)] = 256, vocab[256] = b"aa"
            [256, 97, 98, 100, 256, 97, 98, 97, 99]
            (97, 98) and (256, 97) twice; (97, 98) is smaller -> merges[(97, 98)] = 257, vocab[257] = b"ab"
            [256, 257, 100, 256, 257, 97, 99]
            (256, 257) twice                                  -> merges[(256, 257)] = 258, vocab[258] = b"aaab"
            [258, 100, 258, 97, 99]
        """
        # TODO: 1. vocab_size < 256: raise ValueError(f"vocab_size must be at least 256, one token per byte; got ...")
        #       2. chunks: for each piece of split_text(text), the list of its bytes: list(piece.encode("utf-8"))
        #       3. for i in range(vocab_size - 256): stats over all chunks (get_stats(ids, stats)); stop if empty;
        #          pick the pair by the tie-break above; idx = 256 + i; set self.merges[pair] and self.vocab[idx]
        #          (the two tokens' bytes joined); replace every chunk by merge(chunk, pair, idx).
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Text -> token ids: split with split_text, then merge inside each chunk.

        Each chunk starts as its UTF-8 bytes. While some neighbouring pair is in merges, merge the pair that
        was learned first (the one with the lowest new id) everywhere in the chunk; then stop.
        With merges {(97, 97): 256, (97, 98): 257, (256, 257): 258}: "aaab" -> [97, 97, 97, 98]
        -> [256, 97, 98] -> [256, 257] -> [258]
        """
        # TODO: for each piece of split_text(text): tokens = list(piece.encode("utf-8")); while 2 or more are left,
        #       take the pair of get_stats(tokens) with the lowest id in self.merges (a pair not in merges ranks as
        #       float("inf")); if even that pair is not in merges, stop; else merge it. Collect every piece's tokens.
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text: join the bytes of every id, then read them as UTF-8.

        [258, 100] -> b"aaab" + b"d" -> "aaabd"
        Bytes that are not valid UTF-8 become U+FFFD (errors="replace"): [226, 130] -> "\\ufffd", as a model
        may well produce half of a character.
        """
        # TODO: join the bytes self.vocab[i] of all ids into one bytes object (b"".join), then decode it as
        #       UTF-8 with errors="replace".
        raise NotImplementedError

    def save(self, path) -> None:
        """Write a JSON file: {"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION,
        "pattern": GPT2_SPLIT_PATTERN, "merges": [[left, right], ...]}, the merges in the order learned.

        The merges are enough: the vocabulary follows from them, and their order gives the ids.
        """
        # TODO: the pairs of self.merges sorted by their id (sorted(self.merges, key=self.merges.get)), each as a
        #       list; the dict above; Path(path).write_text(json.dumps(data), encoding="utf-8").
        raise NotImplementedError

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Read a file written by save: the i-th merge (from 0) gets id 256 + i, and its bytes in vocab.

        A file that is not one written by save -> ValueError (read_tokenizer_file checks that for you).
        """
        # TODO: tokenizer = cls(); for i, (left, right) in enumerate(read_tokenizer_file(path)): the merge gets
        #       id 256 + i in tokenizer.merges, and tokenizer.vocab gets its bytes (left's and right's joined).
        #       Return tokenizer.
        raise NotImplementedError


# Given: reading a saved tokenizer, and GPT-2's own vocabulary. Nothing to write below this line.

def read_tokenizer_file(path) -> list[tuple[int, int]]:
    """The merges stored in a file written by Tokenizer.save, in order; ValueError for any other file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not a tokenizer file: it does not hold JSON text") from None
    if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
        raise ValueError(f"{path} is not a tokenizer file: it has no \"format\": \"{TOKENIZER_FORMAT}\"")
    if data.get("version") != TOKENIZER_VERSION:
        raise ValueError(f"{path} is a tokenizer file of version {data.get('version')!r}, "
                         f"but this code reads version {TOKENIZER_VERSION}")
    if data.get("pattern") != GPT2_SPLIT_PATTERN:
        raise ValueError(f"{path} was saved with a different split pattern than GPT2_SPLIT_PATTERN")
    merges = data.get("merges")
    if not isinstance(merges, list):
        raise ValueError(f"{path} is not a tokenizer file: its \"merges\" is not a list")
    for i, pair in enumerate(merges):
        # A merge may only join tokens that exist before it: bytes, or the results of earlier merges.
        if not (isinstance(pair, list) and len(pair) == 2
                and all(type(t) is int and 0 <= t < 256 + i for t in pair)):
            raise ValueError(f"{path} is not a valid tokenizer file: merge {i} is {pair!r}")
    return [(left, right) for left, right in merges]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's spelling of each byte as a visible character, as used in its vocab.json and merges.txt.

    A byte that is a printable Latin-1 character is spelled as itself (97 -> "a"); the 68 others (control
    codes, the space, ...) get the characters from U+0100 on, in byte order: 0 -> "Ā", 10 -> "Ċ", 32 -> "Ġ".
    So GPT-2's token " the" is spelled "Ġthe".
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    spelling = {}
    n = 0
    for b in range(256):
        if b in printable:
            spelling[b] = chr(b)
        else:
            spelling[b] = chr(256 + n)
            n += 1
    return spelling


class GPT2Tokenizer:
    """GPT-2's released vocabulary, run by your Tokenizer's encode and decode.

    Your Tokenizer and GPT-2 agree on every merged token: the merge on line r of merges.txt (from 0) makes
    id 256 + r in both. They differ on the 256 single bytes: yours are numbered by value (the space is 32),
    GPT-2's in its own order (the space is 220). So this class only translates ids at the border.
    """

    def __init__(self, tokenizer: Tokenizer, byte_ids: list[int], size: int):
        self.tokenizer = tokenizer
        # Our id -> GPT-2's id: a byte b becomes byte_ids[b]; a merged id stays as it is.
        self.to_gpt2 = byte_ids + list(range(256, tokenizer.vocab_size))
        self.from_gpt2 = {gpt2_id: ours for ours, gpt2_id in enumerate(self.to_gpt2)}
        self.size = size  # 50257 for GPT-2: our 50256 tokens and the special <|endoftext|>

    @classmethod
    def from_files(cls, vocab_json, merges_txt) -> "GPT2Tokenizer":
        """Build a Tokenizer from GPT-2's vocab.json and merges.txt, with its merges in our byte numbering."""
        gpt2_ids = json.loads(Path(vocab_json).read_text(encoding="utf-8"))  # GPT-2 spelling -> GPT-2 id
        spelling = bytes_to_unicode()
        byte_of = {ch: b for b, ch in spelling.items()}
        lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
        # Some copies of merges.txt start with a "#version" line; ours has none.
        lines = [line for line in lines if line and not line.startswith("#version")]
        tokenizer = Tokenizer()
        our_id = {bytes([b]): b for b in range(256)}  # the bytes of a token -> our id for it
        for idx, line in enumerate(lines, start=256):
            left, right = line.split(" ")
            a, b = bytes(byte_of[ch] for ch in left), bytes(byte_of[ch] for ch in right)
            if gpt2_ids.get(left + right) != idx:
                raise ValueError(f"merge {idx - 256} of {merges_txt} ({line!r}) "
                                 f"is not token {idx} in {vocab_json}")
            tokenizer.merges[(our_id[a], our_id[b])] = idx
            tokenizer.vocab[idx] = a + b
            our_id[a + b] = idx
        byte_ids = [gpt2_ids[spelling[b]] for b in range(256)]
        return cls(tokenizer, byte_ids, size=len(gpt2_ids))

    @property
    def vocab_size(self) -> int:
        return self.size

    def encode(self, text: str) -> list[int]:
        return [self.to_gpt2[i] for i in self.tokenizer.encode(text)]

    def decode(self, ids: list[int]) -> str:
        unknown = [i for i in ids if i not in self.from_gpt2]
        if unknown:
            raise ValueError(f"token id {unknown[0]} has no bytes in this vocabulary "
                             "(special tokens such as <|endoftext|> are not decoded)")
        return self.tokenizer.decode([self.from_gpt2[i] for i in ids])
