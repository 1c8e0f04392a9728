"""Step 1 demo: a tokenizer trained on the bundled corpus cuts a sentence into tokens; GPT-2's does too."""

import textwrap
import time
from pathlib import Path

from kata.demos import corpus, load, sample_sentence

GPT2_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "gpt2"
VOCAB_SIZE = 512  # the direct modes' default (--bpe_vocab_size)


def show_tokens(pieces: list[bytes]) -> str:
    """The tokens side by side, a bar between them; a space is shown as "_" so that it can be seen."""
    words = [piece.decode("utf-8", errors="replace").replace(" ", "_").replace("\n", "\\n") for piece in pieces]
    return textwrap.fill("|".join(words), width=78, initial_indent="  ", subsequent_indent="  ")


def show_ids(ids: list[int]) -> str:
    return textwrap.fill(" ".join(map(str, ids)), width=78, initial_indent="  ", subsequent_indent="  ")


def run(pkg: str) -> None:
    step = load(pkg, "step01_tokenizer")
    text = corpus("en")
    sentence = sample_sentence("en", 3)

    tokenizer = step.Tokenizer()
    start = time.perf_counter()
    tokenizer.train(text, VOCAB_SIZE)
    seconds = time.perf_counter() - start
    print(f"Trained on the bundled corpus ({len(text):,} characters) to {tokenizer.vocab_size} tokens "
          f"in {seconds:.2f} s.")
    first = [tokenizer.vocab[idx].decode("utf-8", errors="replace") for idx in list(tokenizer.merges.values())[:8]]
    print("First merges learned: " + ", ".join(repr(token) for token in first))
    print()

    ids = tokenizer.encode(sentence)
    print(f"Sentence: {sentence}")
    whose = "Your tokenizer" if pkg == "exercises" else "The reference tokenizer"
    print(f"{whose}, {len(ids)} tokens:")
    print(show_tokens([tokenizer.vocab[i] for i in ids]))
    print(show_ids(ids))
    print(f"  {len(sentence) / len(ids):.2f} characters per token here; "
          f"{len(text) / len(tokenizer.encode(text)):.2f} over the whole corpus")

    unseen = "żółw 🐢"
    unseen_ids = tokenizer.encode(unseen)
    print()
    print(f"Never seen in training, {unseen!r} falls back to bytes ({len(unseen_ids)} tokens):")
    print(show_ids(unseen_ids))
    print(f"  and decodes back to {tokenizer.decode(unseen_ids)!r}")

    if not (GPT2_DIR / "vocab.json").is_file() or not (GPT2_DIR / "merges.txt").is_file():
        print()
        print("(GPT-2's vocabulary is not in ../shared/data/gpt2, so there is no comparison with it.)")
        return
    gpt2 = step.GPT2Tokenizer.from_files(GPT2_DIR / "vocab.json", GPT2_DIR / "merges.txt")
    gpt2_ids = gpt2.encode(sentence)
    ours = gpt2.tokenizer.encode(sentence)  # the same tokens in our numbering, to look up their bytes
    print()
    print(f"GPT-2's vocabulary ({gpt2.vocab_size:,} tokens, run by {'your' if pkg == 'exercises' else 'the reference'} encode), {len(gpt2_ids)} tokens:")
    print(show_tokens([gpt2.tokenizer.vocab[i] for i in ours]))
    print(show_ids(gpt2_ids))
    print(f"  {len(sentence) / len(gpt2_ids):.2f} characters per token: "
          f"a larger vocabulary keeps more words whole")
