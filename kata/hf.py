"""`course.py export` and `course.py import`: a course checkpoint as a Hugging Face GPT-2 folder, and back.

The course's GPT uses GPT-2's names, so the weights map one to one; only three things differ:

    the Linear layers     Hugging Face keeps c_attn, c_proj and c_fc as Conv1D, whose weight is stored
                          (in, out); ours is (out, in), so those four weights are transposed on the way
    the byte tokens       ours are ids 0..255 by byte value (the space is 32); GPT-2 numbers them in its own
                          order (the space is 220), so the rows of wte (and of lm_head, the same matrix) are
                          reordered on import; merged tokens keep their ids (merge r is id 256 + r in both)
    the tokenizer files   ours keeps the merges as pairs of ids; GPT-2 spells each token with
                          bytes_to_unicode in vocab.json and lists the merges, in order, in merges.txt

Export writes config.json, model.safetensors, vocab.json, merges.txt, tokenizer_config.json and
generation_config.json. Import reads a GPT-2-family folder (model.safetensors, or pytorch_model.bin through
torch.load(weights_only=True)), refuses in one sentence what the course's GPT cannot compute, and saves a
checkpoint that `course.py chat` talks to.
"""

import argparse
import json
import shutil
import uuid
from pathlib import Path

from .errors import UserError
from .loader import add_code_choice, check_memory, checkpoint_folder, learner_code, load_model, load_steps, \
    whose_code
from .ui import UI, escape

# Hugging Face keeps these Linear layers as Conv1D, whose weight is stored (in, out): ours is (out, in).
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # GELU's tanh form, as step 6 computes it
EPS = 1e-5  # step 7's LayerNorm
INSTALL_SAFETENSORS = "pip install safetensors"


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="the new folder for the Hugging Face files")
    parser.add_argument("--checkpoint", default="checkpoint", metavar="DIR",
                        help="the course checkpoint to export (default checkpoint/)")


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", nargs="?", metavar="HF_DIR", help="a folder with a GPT-2 model in Hugging Face format")
    parser.add_argument("--checkpoint", default="checkpoint", metavar="DIR",
                        help="where the course checkpoint is saved (default checkpoint/)")
    parser.add_argument("--download", choices=["gpt2"], default=None,
                        help="download GPT-2 (124M) from the Hugging Face hub first, into --to")
    parser.add_argument("--to", default="gpt2", metavar="DIR", help="where --download puts the files (default gpt2/)")
    add_code_choice(parser, "import")


# -- the mapping -------------------------------------------------------------------------------------------

def to_hf_state_dict(state_dict: dict) -> dict:
    """Our GPT's state dict under Hugging Face GPT2LMHeadModel's names and layouts.

    transformer.emb.wte.weight -> transformer.wte.weight (and wpe likewise); the weights of c_attn, c_proj
    and c_fc transposed; every other key (ln_1, ln_2, ln_f, biases, lm_head) one to one.
    """
    hf = {}
    for name, tensor in state_dict.items():
        name = name.replace("transformer.emb.", "transformer.")
        if name.endswith(CONV1D):
            tensor = tensor.t()
        hf[name] = tensor.contiguous()
    return hf


def from_hf_state_dict(hf: dict, byte_order: list[int]) -> dict:
    """Hugging Face's GPT-2 tensors -> our GPT's state dict; `byte_order[i]` is the wte row of our token i.

    "h.0.attn.c_attn.weight" (prefix "transformer." or none) -> "transformer.h.0.attn.c_attn.weight",
    transposed; wte's rows reordered, and lm_head given the very same matrix (GPT-2 ties them). The causal
    masks some files keep ("h.0.attn.bias", "h.0.attn.masked_bias") are buffers, not weights: left out.
    """
    import torch

    ours = {}
    for name, tensor in hf.items():
        name = name.removeprefix("transformer.")
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue
        if name.endswith(CONV1D):
            tensor = tensor.t()
        if name in ("wte.weight", "wpe.weight"):
            name = "emb." + name
        ours["transformer." + name] = tensor.float().contiguous()
    wte = ours["transformer.emb.wte.weight"][torch.tensor(byte_order)]
    ours["transformer.emb.wte.weight"] = ours["lm_head.weight"] = wte
    return ours


def tokenizer_files(tokenizer) -> tuple[dict[str, int], list[str]]:
    """Our tokenizer as GPT-2 writes it: (vocab.json's {spelling: id}, merges.txt's lines, in order).

    Byte 32 (the space) -> "Ġ": 32; the merge (32, 116) learned as id 256 -> "Ġt": 256 and the line "Ġ t".
    """
    from solutions.step01_tokenizer import bytes_to_unicode

    spelling = bytes_to_unicode()
    spell = lambda i: "".join(spelling[b] for b in tokenizer.vocab[i])
    vocab: dict[str, int] = {}
    for i in range(tokenizer.vocab_size):
        if spell(i) in vocab:  # GPT-2's files name a token by its bytes: two tokens cannot share them
            raise UserError(f"tokens {vocab[spell(i)]} and {i} stand for the same bytes "
                            f"({tokenizer.vocab[i]!r}), which GPT-2's vocab.json cannot store")
        vocab[spell(i)] = i
    merges = [f"{spell(a)} {spell(b)}" for (a, b) in sorted(tokenizer.merges, key=tokenizer.merges.get)]
    return vocab, merges


def hf_config(config) -> dict:
    """config.json for Hugging Face's GPT2LMHeadModel from our GPTConfig (the course has no special token)."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": config.vocab_size,
        "n_positions": config.block_size, "n_ctx": config.block_size, "n_embd": config.n_embd,
        "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": config.d_ff,
        "activation_function": "gelu_new", "layer_norm_epsilon": EPS, "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout, "attn_pdrop": config.dropout, "initializer_range": 0.02,
        "scale_attn_weights": True, "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": None,
    }


# -- export ------------------------------------------------------------------------------------------------

def export(checkpoint, out, ui: UI) -> None:
    """Write the Hugging Face folder `out` (new, or empty) from the course checkpoint in `checkpoint`."""
    import torch

    save_file = _safetensors().save_file
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise UserError(f"{out} already exists: export into a new folder")
    steps = load_steps(False)  # a checkpoint is the same files whoever's code trained it
    model, tokenizer, _ = load_model(steps, checkpoint_folder(str(checkpoint)), "cpu")
    config = model.config
    tensors = to_hf_state_dict(model.state_dict())
    del tensors["lm_head.weight"]  # the same matrix as wte: Hugging Face ties them again on loading
    for name, size in _biases(config):  # bias=False: GPT-2 always has them, and zeros change nothing
        tensors.setdefault(name, torch.zeros(size))
    vocab, merges = tokenizer_files(tokenizer)
    files = {
        "config.json": hf_config(config),
        "vocab.json": vocab,
        "merges.txt": "#version: 0.2\n" + "".join(line + "\n" for line in merges),
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "model_max_length": config.block_size,
                                  "add_prefix_space": False, "add_bos_token": False,
                                  "clean_up_tokenization_spaces": False, "bos_token": None,
                                  "eos_token": None, "unk_token": None, "pad_token": None},
        # How `course.py chat` samples by default: temperature 0.8 among the 40 likeliest tokens.
        "generation_config.json": {"do_sample": True, "temperature": 0.8, "top_k": 40},
    }
    folder = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    folder.mkdir(parents=True)
    try:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        for name, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False)
            (folder / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, as checked above
        folder.rename(out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    ui.say(f"Exported {escape(str(checkpoint))}/ to {escape(str(out))}/ ({config.n_layer} layers, "
           f"{config.vocab_size:,} tokens). In Python: AutoModelForCausalLM.from_pretrained({str(out)!r}).")


def _biases(config) -> list[tuple[str, int]]:
    C, F = config.n_embd, config.d_ff
    names = [("transformer.ln_f.bias", C)]
    for i in range(config.n_layer):
        h = f"transformer.h.{i}."
        names += [(h + "ln_1.bias", C), (h + "attn.c_attn.bias", 3 * C), (h + "attn.c_proj.bias", C),
                  (h + "ln_2.bias", C), (h + "mlp.c_fc.bias", F), (h + "mlp.c_proj.bias", C)]
    return names


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise UserError(f"Hugging Face's weights file needs the safetensors package: {INSTALL_SAFETENSORS}") from None
    return safetensors.torch


# -- import ------------------------------------------------------------------------------------------------

def read_config(hf_dir: Path) -> dict:
    """The GPTConfig fields for the model in hf_dir/config.json; UserError for what our GPT does not compute."""
    path = hf_dir / "config.json"
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{hf_dir} has no config.json: it is not a Hugging Face model folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path} cannot be read as JSON ({type(e).__name__})") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "gpt2":
        kind = hf.get("model_type") if isinstance(hf, dict) else None
        raise UserError(f"{path} describes a {kind or 'model of unknown type'}, not a GPT-2: the course's GPT "
                        f"computes GPT-2 only")
    refusals = [
        (hf.get("activation_function", "gelu_new") not in ACTIVATIONS,
         f"the activation {hf.get('activation_function')!r}, where the course's GPT has GELU's tanh form"),
        (hf.get("scale_attn_by_inverse_layer_idx", False), "attention scaled by the layer's index"),
        (not hf.get("scale_attn_weights", True), "attention scores that are not divided by sqrt(head size)"),
        (hf.get("add_cross_attention", False), "cross-attention"),
        (not hf.get("tie_word_embeddings", True), "an output layer of its own (tie_word_embeddings is false)"),
        (hf.get("layer_norm_epsilon", EPS) != EPS, f"LayerNorm's epsilon {hf.get('layer_norm_epsilon')}, "
                                                   f"where the course's GPT uses {EPS}"),
    ]
    for refused, what in refusals:
        if refused:
            raise UserError(f"{path} asks for {what}: the course's GPT cannot compute that model")
    try:
        config = {"block_size": hf["n_positions"], "vocab_size": hf["vocab_size"], "n_layer": hf["n_layer"],
                  "n_head": hf["n_head"], "n_embd": hf["n_embd"],
                  "d_ff": hf.get("n_inner") or 4 * hf["n_embd"],
                  "dropout": float(hf.get("resid_pdrop", 0.0)), "bias": True}
    except KeyError as e:
        raise UserError(f"{path} has no {e.args[0]}: it is not a GPT-2 configuration") from None
    return config


def read_weights(hf_dir: Path) -> dict:
    """The tensors in model.safetensors, or in pytorch_model.bin (read with weights_only=True: no code runs)."""
    import torch

    safe, pickled = hf_dir / "model.safetensors", hf_dir / "pytorch_model.bin"
    try:
        if safe.is_file():
            return _safetensors().load_file(str(safe))
        if pickled.is_file():
            data = torch.load(pickled, map_location="cpu", weights_only=True)
            if not isinstance(data, dict):
                raise ValueError("not a state dict")
            return data
    except UserError:
        raise
    except Exception as e:  # a truncated or foreign file fails in many ways
        raise UserError(f"the weights in {hf_dir} cannot be read ({type(e).__name__}): the file is damaged") from None
    raise UserError(f"{hf_dir} has neither model.safetensors nor pytorch_model.bin: there are no weights to import")


def import_model(steps, hf_dir) -> tuple:
    """(model, tokenizer) of the course's code, holding the Hugging Face GPT-2 in hf_dir."""
    import torch

    from solutions.step01_tokenizer import GPT2Tokenizer

    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise UserError(f"{hf_dir} is not a folder: give the folder that holds config.json and the weights")
    config = read_config(hf_dir)
    for name in ("vocab.json", "merges.txt"):
        if not (hf_dir / name).is_file():
            raise UserError(f"{hf_dir} has no {name}: the model cannot be used without its tokenizer")
    try:
        gpt2 = GPT2Tokenizer.from_files(hf_dir / "vocab.json", hf_dir / "merges.txt")
    except (ValueError, KeyError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"the tokenizer files in {hf_dir} are not GPT-2's byte-level BPE ({e})") from None
    byte_order = gpt2.to_gpt2  # our id i -> its row in the Hugging Face model
    if sorted(byte_order[:256]) != list(range(256)) or max(byte_order) >= config["vocab_size"]:
        raise UserError(f"{hf_dir}/vocab.json does not give the 256 bytes ids 0 to 255 and its merges ids below "
                        f"vocab_size {config['vocab_size']}, as GPT-2's does")
    # Only tokens our tokenizer has keep their rows: <|endoftext|> (GPT-2's 50256) has no bytes to encode.
    config["vocab_size"] = len(byte_order)
    check_memory(config, str(hf_dir), fix="it needs a machine with more memory")
    hf = read_weights(hf_dir)
    lm_head, wte = hf.get("lm_head.weight"), hf.get("transformer.wte.weight", hf.get("wte.weight"))
    if lm_head is not None and wte is not None and not torch.equal(lm_head, wte):
        raise UserError(f"the weights in {hf_dir} give lm_head a matrix of its own, and the course's GPT shares "
                        f"wte's")
    model = steps.gpt.GPT(steps.config.GPTConfig(**config))
    try:
        state_dict = from_hf_state_dict(hf, byte_order)
        model.load_state_dict(state_dict)
    except (KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise UserError(f"the weights in {hf_dir} do not fit a GPT of its config.json ({first})") from None
    return model.eval(), gpt2.tokenizer


def run_export(args, ui: UI) -> int:
    export(args.checkpoint, args.out, ui)
    return 0


def run_import(args, ui: UI) -> int:
    if (args.hf_dir is None) == (args.download is None):
        raise UserError("give a folder to import (HF_DIR) or --download gpt2, one of the two")
    directory = checkpoint_folder(args.checkpoint)
    if (directory / "model.pt").exists():
        raise UserError(f"{directory} already holds a model: import into another folder with --checkpoint")
    steps = load_steps(whose_code(args, ui))
    hf_dir = Path(args.hf_dir) if args.hf_dir else None
    if args.download:
        from . import hub

        hf_dir = hub.download(args.download, Path(args.to), ui)
    with learner_code(steps.mine):
        model, tokenizer = import_model(steps, hf_dir)
        try:
            steps.checkpoint.save_checkpoint(directory, model, tokenizer)
        except (ValueError, OSError) as e:
            raise UserError(str(e)) from None
    config = model.config
    ui.say(f"Imported {escape(str(hf_dir))}/ into {escape(str(directory))}/: {config.n_layer} layers, "
           f"{config.n_head} heads, d_model {config.n_embd}, {config.vocab_size:,} tokens, context "
           f"{config.block_size}.")
    ui.say(f"Talk to it: python course.py chat --checkpoint {escape(str(directory))}")
    return 0
