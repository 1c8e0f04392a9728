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
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of `pair` in ids by the single token idx, left to right.

    ids=[1, 2, 3, 1, 2], pair=(1, 2), idx=4 -> [4, 3, 4]
    ids=[97, 97, 97], pair=(97, 97), idx=256 -> [256, 97]   (subtle: occurrences never overlap)
    """
    out = []
    i = 0
    while i < len(ids):
        # The last token has no right neighbour, so it can only be copied.
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2  # both tokens of the pair are used up: "aaa" gives one merge, not two
        else:
            out.append(ids[i])
            i += 1
    return out


def split_text(text: str) -> list[str]:
    """Cut text into chunks with GPT2_SPLIT_PATTERN; merges happen inside a chunk, never across.

    "I'm here, 42 times  \\n" -> ["I", "'m", " here", ",", " 42", " times", "  \\n"]
    """
    return GPT2_SPLIT.findall(text)


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
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256, one token per byte; got {vocab_size}")
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}
        chunks = [list(piece.encode("utf-8")) for piece in split_text(text)]
        for i in range(vocab_size - 256):
            # Counted afresh over every chunk each time: a merge changes the pairs around every place it made.
            stats: dict[tuple[int, int], int] = {}
            for ids in chunks:
                get_stats(ids, stats)
            if not stats:
                break  # every chunk is a single token: nothing left to merge
            pair = min(stats, key=lambda p: (-stats[p], p))  # the most frequent; a tie goes to the smallest pair
            idx = 256 + i
            self.merges[pair] = idx
            self.vocab[idx] = self.vocab[pair[0]] + self.vocab[pair[1]]
            chunks = [merge(ids, pair, idx) for ids in chunks]

    def encode(self, text: str) -> list[int]:
        """Text -> token ids: split with split_text, then merge inside each chunk.

        Each chunk starts as its UTF-8 bytes. While some neighbouring pair is in merges, merge the pair that
        was learned first (the one with the lowest new id) everywhere in the chunk; then stop.
        With merges {(97, 97): 256, (97, 98): 257, (256, 257): 258}: "aaab" -> [97, 97, 97, 98]
        -> [256, 97, 98] -> [256, 257] -> [258]
        """
        ids = []
        # Real text repeats its chunks, so each distinct chunk is encoded once and then looked up.
        cache: dict[str, list[int]] = {}
        for match in GPT2_SPLIT.finditer(text):  # split_text's chunks, without a list of them all
            chunk = match.group()
            tokens = cache.get(chunk)
            if tokens is None:
                tokens = list(chunk.encode("utf-8"))
                while len(tokens) >= 2:
                    # A merge may build on earlier ones, so the earliest learned must go first;
                    # a pair never learned ranks last and ends the loop.
                    pair = min(zip(tokens, tokens[1:]), key=lambda p: self.merges.get(p, float("inf")))
                    if pair not in self.merges:
                        break
                    tokens = merge(tokens, pair, self.merges[pair])
                cache[chunk] = tokens
            ids.extend(tokens)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text: join the bytes of every id, then read them as UTF-8.

        [258, 100] -> b"aaab" + b"d" -> "aaabd"
        Bytes that are not valid UTF-8 become U+FFFD (errors="replace"): [226, 130] -> "\\ufffd", as a model
        may well produce half of a character.
        """
        # subtle: join the bytes first and decode once; a character may be split across two tokens.
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def save(self, path) -> None:
        """Write a JSON file: {"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION,
        "pattern": GPT2_SPLIT_PATTERN, "merges": [[left, right], ...]}, the merges in the order learned.

        The merges are enough: the vocabulary follows from them, and their order gives the ids.
        """
        merges = sorted(self.merges, key=self.merges.get)  # the pair of id 256 first, then 257, ...
        data = {"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION, "pattern": GPT2_SPLIT_PATTERN,
                "merges": [list(pair) for pair in merges]}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Read a file written by save: the i-th merge (from 0) gets id 256 + i, and its bytes in vocab.

        A file that is not one written by save -> ValueError (read_tokenizer_file checks that for you).
        """
        tokenizer = cls()
        for idx, (left, right) in enumerate(read_tokenizer_file(path), start=256):
            tokenizer.merges[(left, right)] = idx
            tokenizer.vocab[idx] = tokenizer.vocab[left] + tokenizer.vocab[right]
        return tokenizer


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
