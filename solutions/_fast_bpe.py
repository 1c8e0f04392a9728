"""A faster BPE trainer for long texts: the same merges as step 1's Tokenizer.train, learned incrementally.

Tokenizer.train (step 1) recounts every pair of every chunk for each merge: clear, and fine for the bundled
corpus, but a 1 MB text then takes minutes. This trainer learns the same merges in the same order with three
shortcuts, and is what the direct modes use on a text of your own:

1. Each distinct chunk is kept once, with how often it occurs (" the" may occur 10,000 times).
2. A heap hands out the most frequent pair without scanning all of them.
3. After a merge, only the chunks that held the pair are recounted.

One difference, on purpose: a chunk longer than MAX_CHUNK_BYTES is cut into pieces of MAX_CHUNK_BYTES bytes
(the last one shorter) before counting. GPT-2's pattern keeps the chunks of real text short (a word, a
number, a run of spaces), but a text with no spaces, say 10 MB of "aaaa...", is a single chunk, and every
merge would rewrite all of it. So on a text whose chunks are all at most MAX_CHUNK_BYTES bytes, train_fast
and Tokenizer.train learn exactly the same merges (tests/test_fast_bpe.py checks it); on a longer chunk they
differ only in that no pair spans a cut, so no token is longer than MAX_CHUNK_BYTES bytes.
"""

import heapq
from collections import Counter
from collections.abc import Callable

from .step01_tokenizer import GPT2_SPLIT

MAX_CHUNK_BYTES = 256  # a longer chunk is cut into pieces of this many bytes before counting


def pieces(text: str) -> Counter:
    """The byte strings training counts in, each with how often it occurs: GPT-2's chunks, long ones cut.

    "ab ab" -> {b"ab": 1, b" ab": 1};  "a" * 600 -> {b"a" * 256: 2, b"a" * 88: 1}
    """
    chunk_counts = Counter(m.group() for m in GPT2_SPLIT.finditer(text))  # finditer: no list of every chunk
    counts: Counter = Counter()
    for chunk, n in chunk_counts.items():
        data = chunk.encode("utf-8")
        for start in range(0, len(data), MAX_CHUNK_BYTES):
            counts[data[start:start + MAX_CHUNK_BYTES]] += n
    return counts


def merge_counting(ids: list[int], pair: tuple[int, int], idx: int, freq: int,
                   delta: dict, where: dict, w: int) -> list[int]:
    """merge(ids, pair, idx), and the change it makes to the pair counts added into delta (times freq).

    Only the pairs next to each occurrence change. With L the token now on the left (perhaps one just
    merged) and R the old one on the right: (a, b), (L, a) and (b, R) go, (L, idx) and (idx, R) come.
    ids=[97, 98, 97, 98], pair=(97, 98), idx=256, freq=1 -> [256, 256], and delta gets
    (97, 98): -2, (98, 97): -1, (256, 256): +1 ((256, 97) comes and goes again).
    """
    a, b = pair
    out: list[int] = []
    n = len(ids)
    i = 0
    while True:
        try:
            j = ids.index(a, i)  # a C-speed scan to the next candidate
        except ValueError:
            break
        if j + 1 >= n or ids[j + 1] != b:
            out.extend(ids[i:j + 1])
            i = j + 1
            continue
        out.extend(ids[i:j])
        delta[pair] = delta.get(pair, 0) - freq
        if out:
            left = out[-1]
            delta[(left, a)] = delta.get((left, a), 0) - freq
            delta[(left, idx)] = delta.get((left, idx), 0) + freq
            where.setdefault((left, idx), set()).add(w)
        if j + 2 < n:
            right = ids[j + 2]
            delta[(b, right)] = delta.get((b, right), 0) - freq
            delta[(idx, right)] = delta.get((idx, right), 0) + freq
            where.setdefault((idx, right), set()).add(w)
        out.append(idx)
        i = j + 2  # both tokens are used up: occurrences never overlap, as in merge
    out.extend(ids[i:])
    return out


def train_fast(tokenizer, text: str, vocab_size: int,
               progress: Callable[[int, int], None] | None = None) -> None:
    """What tokenizer.train(text, vocab_size) does, on a long text in seconds rather than minutes.

    tokenizer is a step 1 Tokenizer (any object with its `merges` and `vocab`); both are replaced.
    progress, when given, is called as progress(merges done, merges asked for): once counting is done
    (0, n), after every hundredth of the merges, and once at the end, which may be early when no pair is left.
    """
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256, one token per byte; got {vocab_size}")
    tokenizer.merges = {}
    tokenizer.vocab = {i: bytes([i]) for i in range(256)}
    total = vocab_size - 256
    every = max(1, total // 100)
    counted = pieces(text)
    words = [list(piece) for piece in counted]  # bytes -> their ids 0..255
    freqs = list(counted.values())
    stats: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> the words it occurs in (perhaps no longer)
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + freqs[w]
            where.setdefault(pair, set()).add(w)
    # Entries (-count, pair) sort by count first, then by the pair itself: Tokenizer.train's tie-break.
    # When a count changes, the new entry is pushed and the old one is left, to be skipped when it comes up.
    heap = [(-count, pair) for pair, count in stats.items()]
    heapq.heapify(heap)
    if progress is not None:
        progress(0, total)
    done = 0
    for idx in range(256, vocab_size):
        while heap and stats.get(heap[0][1]) != -heap[0][0]:
            heapq.heappop(heap)  # out of date: that pair's count has changed since
        if not heap:
            break  # every word is a single token: nothing left to merge
        _, pair = heapq.heappop(heap)
        tokenizer.merges[pair] = idx
        tokenizer.vocab[idx] = tokenizer.vocab[pair[0]] + tokenizer.vocab[pair[1]]
        delta: dict[tuple[int, int], int] = {}
        for w in where.pop(pair):
            words[w] = merge_counting(words[w], pair, idx, freqs[w], delta, where, w)
        for p, change in delta.items():
            if change == 0:
                continue
            stats[p] = stats.get(p, 0) + change
            if stats[p] == 0:
                del stats[p]
            else:
                heapq.heappush(heap, (-stats[p], p))
        done += 1
        if progress is not None and done % every == 0 and done < total:
            progress(done, total)
    if progress is not None:
        progress(done, total)


def encode_fast(tokenizer, text: str) -> list[int]:
    """What tokenizer.encode(text) gives, without its cost on a long chunk.

    Tokenizer.encode scans the whole chunk once for every merge it applies: fine for a word, hours for a
    10 MB chunk of random letters. Here the chunk is a linked list and a heap holds (merge id, position) for
    every neighbouring pair that is a merge, so each merge costs a few steps. Popping the lowest id first and,
    within one id, the leftmost position first is exactly encode's order: a pair a merge creates always has a
    higher id than that merge, since its new token did not exist before it.
    """
    merges = tokenizer.merges
    ids: list[int] = []
    cache: dict[str, list[int]] = {}
    for match in GPT2_SPLIT.finditer(text):
        chunk = match.group()
        tokens = cache.get(chunk)
        if tokens is None:
            tokens = cache[chunk] = _encode_chunk(list(chunk.encode("utf-8")), merges)
        ids.extend(tokens)
    return ids


def _encode_chunk(tok: list[int], merges: dict[tuple[int, int], int]) -> list[int]:
    n = len(tok)
    nxt = list(range(1, n + 1))  # the next live position; n: none
    prv = list(range(-1, n - 1))  # the previous live position; -1: none
    heap = [(merges[pair], i) for i, pair in enumerate(zip(tok, tok[1:])) if pair in merges]
    heapq.heapify(heap)
    while heap:
        idx, i = heapq.heappop(heap)
        j = nxt[i] if tok[i] >= 0 else n
        if j >= n or merges.get((tok[i], tok[j])) != idx:
            continue  # out of date: an earlier merge changed this pair
        tok[i], tok[j] = idx, -1  # j is used up
        nxt[i] = k = nxt[j]
        if k < n:
            prv[k] = i
            if (idx, tok[k]) in merges:
                heapq.heappush(heap, (merges[(idx, tok[k])], i))
        p = prv[i]
        if p >= 0 and (tok[p], idx) in merges:
            heapq.heappush(heap, (merges[(tok[p], idx)], p))
    return [t for t in tok if t >= 0]
