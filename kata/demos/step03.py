"""Step 3 live: a corpus sentence turned into vectors, and what an untrained embedding table knows (nothing yet)."""

import math

import torch

from . import TOKENIZER_NOTE, corpus_tokenizer, load, sample_sentence, trained

def tokenizer(bpe=None):
    """(encode, piece, vocab_size, which); piece(id) is the token's text, a space shown as "_" to be seen.

    `bpe` is a trained checkpoint's tokenizer; without one, the reference trained on the bundled corpus."""
    which = "the tokenizer of the trained model" if bpe is not None else TOKENIZER_NOTE
    bpe = bpe or corpus_tokenizer()
    return bpe.encode, lambda i: _show(bpe.vocab[i]), bpe.vocab_size, which


def with_weights(module, source):
    """`module` (the step's code) given the trained weights of `source` (the same part of the checkpoint's model)."""
    module.load_state_dict(source.state_dict())
    return module.eval()


def _show(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace").replace(" ", "_").replace("\n", "\\n")


def short_sentence(encode, lo: int = 8, hi: int = 12) -> str:
    """The first corpus sentence of lo to hi tokens (the first sentence, if none is)."""
    for index in range(200):
        sentence = sample_sentence("en", index)
        if lo <= len(encode(sentence)) <= hi:
            return sentence
    return sample_sentence("en", 0)


def run(pkg: str) -> None:
    step = load(pkg, "step03_embeddings")
    model = trained()
    print(model.note())
    encode, piece, vocab_size, which = tokenizer(model.tokenizer)
    torch.manual_seed(0)
    if model.model is not None:
        config = step.GPTConfig(**dict(vars(model.model.config), dropout=0.0))
        emb = with_weights(step.Embeddings(config), model.model.transformer.emb)
    else:
        config = step.GPTConfig(vocab_size=vocab_size, block_size=64, n_embd=64, dropout=0.0)
        emb = step.Embeddings(config).eval()
    wte, wpe = emb.wte.weight.detach(), emb.wpe.weight.detach()
    print(f"Tokens: {which}.")
    print(f"wte {tuple(wte.shape)}: one row of {config.n_embd} numbers per token ({wte.numel():,} numbers)")
    print(f"wpe {tuple(wpe.shape)}: one row per position, up to block_size ({wpe.numel():,} numbers)\n")

    sentence = sample_sentence("en", 0)
    ids = encode(sentence)[:config.block_size]
    with torch.no_grad():
        x = emb(torch.tensor([ids]))[0]  # (T, C)
    print(f"{sentence!r}")
    print(f"-> {len(ids)} tokens -> x of shape {tuple(x.shape)} (B=1, T={len(ids)}, C={config.n_embd})\n")
    print(f"  {'pos':>3}  {'token':<12} {'id':>4}   {'|wte row|':>9} {'|wpe row|':>9} {'|x|':>7}")
    for t, i in enumerate(ids):
        print(f"  {t:>3}  {piece(i):<12} {i:>4}   {wte[i].norm():>9.2f} {wpe[t].norm():>9.2f} {x[t].norm():>7.2f}")
    if model.model is None:
        print(f"\nnn.Embedding starts each row as {config.n_embd} draws from N(0, 1): a row's length is near")
        print(f"sqrt({config.n_embd}) = {math.sqrt(config.n_embd):.0f}, and x, the sum of two rows, near sqrt(128) = 11.3. "
              f"(Step 8 starts")
        print("the tables smaller, as GPT-2 did.)")
    else:
        print("\nThese rows were learned: training set each length, starting from GPT-2's small")
        print("initial values (step 8).")

    repeats = [i for i in ids if ids.count(i) > 1]
    if repeats:
        token = max(repeats, key=lambda i: len(piece(i)))
        s, t = [p for p, i in enumerate(ids) if i == token][:2]
        print(f"\n{piece(token)!r} is at positions {s} and {t}: the same wte row, different wpe rows.")
        print(f"  |x[{t}] - x[{s}]| = {(x[t] - x[s]).norm():.3f}  and  |wpe[{t}] - wpe[{s}]| = "
              f"{(wpe[t] - wpe[s]).norm():.3f}:")
        print("  the position alone makes the difference.")

    word = max(ids, key=lambda i: len(piece(i)))
    similarity = torch.nn.functional.cosine_similarity(wte[word].unsqueeze(0), wte, dim=-1)
    similarity[word] = -2.0  # not its own neighbour
    for i in range(vocab_size):
        if "\ufffd" in piece(i):
            similarity[i] = -2.0  # half a character: nothing to read
    best = similarity.topk(5)
    state = "untrained" if model.model is None else "trained"
    print(f"\nNearest neighbours of {piece(word)!r} in this {state} table (cosine similarity):")
    print("  " + "   ".join(f"{piece(i)!r} {s:.2f}" for s, i in zip(best.values.tolist(), best.indices.tolist())))
    spread = 1 / math.sqrt(config.n_embd)
    if model.model is None:
        print(f"They are random. Two random vectors in {config.n_embd} dimensions are nearly unrelated")
        print(f"(similarity near 0, give or take {spread:.2f}); the best of hundreds"
              f" reach {best.values[0]:.2f}.")
        print("Nothing has trained the table yet. Training pulls tokens that are used alike")
        print("(cat, dog) close together; step 11 trains a model on this corpus.")
    else:
        print(f"Random rows in {config.n_embd} dimensions would sit near 0, give or take {spread:.2f}.")
        print("Tokens the model learned to use alike come out closer; on a small text and")
        print("a short training, only some neighbours make sense yet.")
