"""course.py export and import: a course checkpoint as a Hugging Face GPT-2 folder, a GPT-2 as a checkpoint.

The oracles are Hugging Face's own: `transformers` loads what export writes (offline) and saves the small
random GPT-2s that import reads; `tokenizers` trains their byte-level vocabularies, whose byte order is
GPT-2's, not ours. GPT-2's real vocab.json and merges.txt come from ../shared/data/gpt2 (skipped where
absent). The download is tested against an HTTP server on 127.0.0.1 that the test runs.
"""

import hashlib
import http.server
import json
import shutil
import socket
import threading
import warnings
from pathlib import Path

import pytest
import torch

from course_helpers import run_course
from kata import hf, hub
from kata.cli import main
from kata.errors import UserError
from kata.safetext import printable
from kata.ui import UI
from solutions.step01_tokenizer import GPT2Tokenizer, Tokenizer
from solutions.step08_gpt import GPT, GPTConfig
from solutions.step10_generation import generate
from solutions.step11_own_model import load_checkpoint, prepare_data, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
GPT2_DIR = ROOT.parent / "shared" / "data" / "gpt2"
EXPORTED = {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
            "generation_config.json"}

TEXTS = [
    "Zażółć gęślą jaźń. Źdźbło, łódź i chrząszcz brzmi w trzcinie.",
    "Emoji 🙂👍🏽 and a family 👨‍👩‍👧, flags 🇵🇱",
    "日本語のテキストと中文文本，还有한국어。",
    "def merge(ids, pair):\n    out = []\n        for i in ids:\n\tout.append(i)  # tab\n",
    "a line\n\n\nafter blank lines\n\n",
    "Numbers: 0 7 42 3.14159 1,000,000 2024-05-17 0x1F",
    "The cat sat on the mat. I'm sure they'll say it's John's.",
    "  leading and trailing spaces   ",
]
CORPUS = "\n".join(TEXTS) * 8


@pytest.fixture(scope="module")
def transformers():
    pytest.importorskip("safetensors")
    module = pytest.importorskip("transformers")
    module.logging.set_verbosity_error()
    module.utils.logging.disable_progress_bar()
    return module


def course_model(vocab_size: int, bias: bool = True, seed: int = 0) -> GPT:
    """A small GPT whose weights are far from their initialisation, so that no check passes by symmetry."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=48, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, d_ff=48,
                          bias=bias))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # peaked predictions: greedy choices are never near ties
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(folder, model, tokenizer): a course checkpoint with a tokenizer trained on TEXTS."""
    tokenizer, _, _ = prepare_data(CORPUS, 400)
    model = course_model(tokenizer.vocab_size)
    folder = tmp_path_factory.mktemp("course") / "checkpoint"
    save_checkpoint(folder, model, tokenizer)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "hf"
    assert main(["export", str(out), "--checkpoint", str(checkpoint[0])]) == 0
    return out


# -- export ------------------------------------------------------------------------------------------------

def test_export_writes_a_hugging_face_gpt2_folder(exported):
    assert {p.name for p in exported.iterdir()} == EXPORTED


@pytest.mark.parametrize("text", TEXTS)
def test_exported_tokenizer_gives_our_ids(transformers, checkpoint, exported, text):
    theirs = transformers.AutoTokenizer.from_pretrained(exported, local_files_only=True)
    ours = checkpoint[2]
    assert theirs.encode(text) == ours.encode(text), "Hugging Face's tokenizer cuts the text differently"
    assert theirs.decode(ours.encode(text)) == text


def test_exported_model_gives_our_logits(transformers, checkpoint, exported):
    _, model, tokenizer = checkpoint
    theirs = transformers.AutoModelForCausalLM.from_pretrained(exported, local_files_only=True).eval()
    idx = torch.tensor([tokenizer.encode(TEXTS[0] + TEXTS[2])[:48]])
    with torch.no_grad():
        diff = (theirs(idx).logits - model(idx)[0]).abs().max().item()
    assert diff < 1e-5, f"the exported model's logits differ from the checkpoint's by up to {diff:.2e}"


def test_pipeline_greedy_text_is_the_courses(transformers, checkpoint, exported):
    _, model, tokenizer = checkpoint
    prompt, length = "The cat sat", 20
    pipe = transformers.pipeline("text-generation", model=str(exported), tokenizer=str(exported), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = pipe(prompt, max_new_tokens=length, do_sample=False)[0]["generated_text"]
    ours = generate(model, torch.tensor([tokenizer.encode(prompt)]), length, temperature=0)[0].tolist()
    assert text == tokenizer.decode(ours), "Hugging Face's greedy text differs from step 10's at temperature 0"


def test_export_of_a_model_without_biases_gives_its_logits(transformers, checkpoint, tmp_path):
    tokenizer = checkpoint[2]
    model = course_model(tokenizer.vocab_size, bias=False)
    save_checkpoint(tmp_path / "nobias", model, tokenizer)
    hf.export(tmp_path / "nobias", tmp_path / "out", UI())
    theirs, loading = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", local_files_only=True,
                                                                        output_loading_info=True)
    assert not loading["missing_keys"], f"tensors left to Hugging Face's initialisation: {loading['missing_keys']}"
    idx = torch.randint(0, tokenizer.vocab_size, (2, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (theirs.eval()(idx).logits - model(idx)[0]).abs().max().item() < 1e-5


def test_export_never_writes_into_a_folder_that_holds_files(checkpoint, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["export", str(out), "--checkpoint", str(checkpoint[0])]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and (out / "notes.txt").read_text() == "keep me"


def test_two_tokens_with_the_same_bytes_are_refused():
    """(a, b) -> 256 "ab", (256, c) -> 257 "abc", (b, c) -> 258 "bc", (a, 258) -> 259 "abc" again."""
    tokenizer = Tokenizer()
    for idx, (left, right) in enumerate([(97, 98), (256, 99), (98, 99), (97, 258)], start=256):
        tokenizer.merges[(left, right)] = idx
        tokenizer.vocab[idx] = tokenizer.vocab[left] + tokenizer.vocab[right]
    with pytest.raises(UserError, match="tokens 257 and 259 stand for the same bytes"):
        hf.tokenizer_files(tokenizer)


# -- import ------------------------------------------------------------------------------------------------

def bpe_files(folder: Path, kind: str) -> Path:
    """vocab.json and merges.txt in `folder`: GPT-2's own ("gpt2"), or 300 tokens trained by `tokenizers`."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "gpt2":
        if not (GPT2_DIR / "vocab.json").is_file() or not (GPT2_DIR / "merges.txt").is_file():
            pytest.skip(f"GPT-2's vocab.json and merges.txt are not in {GPT2_DIR}")
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(GPT2_DIR / name, folder / name)
        return folder
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, show_progress=False, special_tokens=[],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS], trainer)
    tok.model.save(str(folder))
    return folder


def hf_tokenizer(folder: Path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


def hf_gpt2(transformers, folder: Path, n_layer=1, n_head=2, n_embd=32, kind="small", extra_rows=0, **settings):
    """A random GPT2LMHeadModel saved by transformers into `folder`, beside its tokenizer's files."""
    bpe_files(folder, kind)
    vocab = len(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
    config = transformers.GPT2Config(vocab_size=vocab + extra_rows, n_positions=32, n_embd=n_embd,
                                     n_layer=n_layer, n_head=n_head, initializer_range=0.3, **settings)
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(folder)
    return model


SHAPES = [
    dict(n_layer=1, n_head=2, n_embd=32, kind="small"),
    dict(n_layer=3, n_head=4, n_embd=64, kind="small", extra_rows=5),  # rows no token of the tokenizer uses
    dict(n_layer=3, n_head=2, n_embd=64, kind="small", n_inner=96),
    dict(n_layer=1, n_head=4, n_embd=32, kind="gpt2"),  # 50,257 tokens, <|endoftext|> among them
]


@pytest.mark.parametrize("shape", SHAPES, ids=["1x2x32", "3x4x64-padded", "3x2x64-inner96", "1x4x32-gpt2"])
def test_imported_model_gives_hugging_faces_logits_and_greedy_tokens(transformers, tmp_path, shape):
    theirs = hf_gpt2(transformers, tmp_path / "hf", **shape)
    assert main(["import", str(tmp_path / "hf"), "--checkpoint", str(tmp_path / "ck"), "--reference"]) == 0
    model, tokenizer, _ = load_checkpoint(tmp_path / "ck")
    order = GPT2Tokenizer.from_files(tmp_path / "hf" / "vocab.json", tmp_path / "hf" / "merges.txt").to_gpt2
    oracle = hf_tokenizer(tmp_path / "hf")
    for text in TEXTS:
        assert [order[i] for i in tokenizer.encode(text)] == oracle.encode(text).ids, f"ids differ on {text!r}"
    prompt = tokenizer.encode(TEXTS[0])[:12]
    with torch.no_grad():
        ours = model(torch.tensor([prompt]))[0]
        hf_logits = theirs(torch.tensor([[order[i] for i in prompt]])).logits[..., order]
    diff = (ours - hf_logits).abs().max().item()
    assert diff < 1e-5, f"the imported model's logits differ from Hugging Face's by up to {diff:.2e}"
    unknown = sorted(set(range(theirs.config.vocab_size)) - set(order))  # <|endoftext|>, padding rows
    hf_ids = theirs.generate(torch.tensor([[order[i] for i in prompt]]), max_new_tokens=12, do_sample=False,
                             suppress_tokens=unknown or None, pad_token_id=0)[0].tolist()
    greedy = generate(model, torch.tensor([prompt]), 12, temperature=0)[0].tolist()
    assert [order[i] for i in greedy] == hf_ids, "greedy tokens differ from Hugging Face's"


def test_import_reads_pytorch_model_bin(transformers, tmp_path):
    theirs = hf_gpt2(transformers, tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(theirs.state_dict(), tmp_path / "hf" / "pytorch_model.bin")
    model, _ = hf.import_model(hf.load_steps(False), tmp_path / "hf")
    order = GPT2Tokenizer.from_files(tmp_path / "hf" / "vocab.json", tmp_path / "hf" / "merges.txt").to_gpt2
    assert torch.equal(model.transformer.emb.wte.weight, theirs.transformer.wte.weight[order])


def test_import_reads_the_hubs_layout_of_gpt2s_file(transformers, tmp_path):
    """The hub's GPT-2 file names its tensors without "transformer." and keeps each layer's causal mask."""
    import safetensors.torch

    theirs = hf_gpt2(transformers, tmp_path / "hf", n_layer=2)
    weights = {name.removeprefix("transformer."): tensor for name, tensor in theirs.state_dict().items()
               if name != "lm_head.weight"}
    for i in range(2):
        weights[f"h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
    safetensors.torch.save_file(weights, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    model, _ = hf.import_model(hf.load_steps(False), tmp_path / "hf")
    assert torch.equal(model.transformer.h[1].attn.c_proj.weight, theirs.transformer.h[1].attn.c_proj.weight.t())


class Payload:
    """Not a tensor: torch.load(weights_only=True) refuses to build it."""


def test_import_refuses_a_pickle_that_is_not_only_weights(transformers, tmp_path):
    hf_gpt2(transformers, tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save({"wte.weight": Payload()}, tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(UserError, match="cannot be read"):
        hf.import_model(hf.load_steps(False), tmp_path / "hf")


REFUSED = [
    ({"model_type": "llama"}, "not a GPT-2"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scaled by the layer's index"),
    ({"activation_function": "relu"}, "the activation 'relu'"),
    ({"tie_word_embeddings": False}, "an output layer of its own"),
    ({"layer_norm_epsilon": 1e-6}, "LayerNorm's epsilon"),
    ({"scale_attn_weights": False}, "not divided by sqrt"),
]


@pytest.mark.parametrize("change,said", REFUSED, ids=[next(iter(c)) for c, _ in REFUSED])
def test_import_refuses_what_the_courses_gpt_cannot_compute(transformers, tmp_path, capsys, change, said):
    hf_gpt2(transformers, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, **change}))
    capsys.readouterr()
    assert main(["import", str(tmp_path / "hf"), "--checkpoint", str(tmp_path / "ck"), "--reference"]) == 2
    err = capsys.readouterr().err
    assert said in err and "the course's GPT" in err and err.count("\n") == 1, err
    assert not (tmp_path / "ck").exists()


def test_import_refuses_an_output_layer_that_is_not_wte(transformers, tmp_path):
    import safetensors.torch

    hf_gpt2(transformers, tmp_path / "hf")
    weights = safetensors.torch.load_file(tmp_path / "hf" / "model.safetensors")
    weights["lm_head.weight"] = weights["transformer.wte.weight"] + 1
    safetensors.torch.save_file(weights, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="lm_head a matrix of its own"):
        hf.import_model(hf.load_steps(False), tmp_path / "hf")


def test_export_then_import_gives_back_the_same_weights_and_tokenizer(checkpoint, exported, tmp_path):
    _, model, tokenizer = checkpoint
    assert main(["import", str(exported), "--checkpoint", str(tmp_path / "back"), "--reference"]) == 0
    back, back_tokenizer, _ = load_checkpoint(tmp_path / "back")
    assert back_tokenizer.merges == tokenizer.merges
    assert back.config == model.config
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), f"{name} changed on the way out and back"
    prompt = "The cat sat"
    greedy = generate(model, torch.tensor([tokenizer.encode(prompt)]), 10, temperature=0)[0].tolist()
    said = run_course(ROOT, "chat", "--checkpoint", str(tmp_path / "back"), "--reference", "--temp", "0",
                      "--len", "10", input_text=prompt + "\n")
    assert said.returncode == 0, said.stderr
    assert printable(tokenizer.decode(greedy)) in said.stdout, "chat does not talk through the imported model"


def test_import_never_replaces_a_model(checkpoint, exported, capsys):
    before = (checkpoint[0] / "model.pt").read_bytes()
    assert main(["import", str(exported), "--checkpoint", str(checkpoint[0]), "--reference"]) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert (checkpoint[0] / "model.pt").read_bytes() == before


# -- the download ------------------------------------------------------------------------------------------

class Hub(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut: set[str] = set()  # paths whose answer promises every byte and breaks off after a tenth of them
    asked: list[str] = []

    def do_GET(self):
        self.asked.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 10] if self.path in self.cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Hub.files, Hub.cut, Hub.asked = {}, set(), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def pinned(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_writes_checked_files_and_keeps_them(server, tmp_path):
    data = {"config.json": b"{}", "model.safetensors": bytes(range(256)) * 40}
    Hub.files = {f"/m/resolve/main/{name}": body for name, body in data.items()}
    files = {name: pinned(body) for name, body in data.items()}
    assert hub.download("m", tmp_path / "to", UI(), files, server) == tmp_path / "to"
    assert {name: (tmp_path / "to" / name).read_bytes() for name in data} == data
    assert leftovers(tmp_path / "to") == sorted(data)
    hub.download("m", tmp_path / "to", UI(), files, server)
    assert len(Hub.asked) == 2, "files already downloaded and checked were asked for again"


@pytest.mark.parametrize("problem,said", [
    ("checksum", "SHA-256 is not the file's own"),
    ("missing", "answered 404"),
    ("cut", "stopped after 10,240 of its 102,400 bytes"),
    ("refused", "the connection was refused"),
])
def test_a_failed_download_leaves_nothing_behind(server, tmp_path, problem, said):
    body = bytes(range(256)) * 400
    Hub.files = {"/m/resolve/main/w.bin": body}
    size, sha = pinned(body)
    if problem == "checksum":
        Hub.files["/m/resolve/main/w.bin"] = body[::-1]
    elif problem == "missing":
        Hub.files = {}
    elif problem == "cut":
        Hub.cut = {"/m/resolve/main/w.bin"}
    if problem == "refused":
        with socket.socket() as s:  # a port that nothing listens on once this socket is closed
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = f"http://127.0.0.1:{port}"
    with pytest.raises(UserError, match=said) as error:
        hub.download("m", tmp_path / "to", UI(), {"w.bin": (size, sha)}, server)
    assert "\n" not in str(error.value)
    assert leftovers(tmp_path / "to") == [], "a failed download left a file behind"


def test_download_never_replaces_a_users_file(server, tmp_path):
    Hub.files = {"/m/resolve/main/vocab.json": b"theirs"}
    (tmp_path / "to").mkdir()
    (tmp_path / "to" / "vocab.json").write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists and is not m's vocab.json"):
        hub.download("m", tmp_path / "to", UI(), {"vocab.json": pinned(b"theirs")}, server)
    assert (tmp_path / "to" / "vocab.json").read_bytes() == b"mine" and Hub.asked == []


def test_pinned_gpt2_tokenizer_files_are_the_real_ones():
    """merges.txt as the hub serves it starts with a "#version: 0.2" line that the shared copy leaves out."""
    if not (GPT2_DIR / "vocab.json").is_file() or not (GPT2_DIR / "merges.txt").is_file():
        pytest.skip(f"GPT-2's vocab.json and merges.txt are not in {GPT2_DIR}")
    assert hub.MODELS["gpt2"]["vocab.json"] == pinned((GPT2_DIR / "vocab.json").read_bytes())
    assert hub.MODELS["gpt2"]["merges.txt"] == pinned(b"#version: 0.2\n" + (GPT2_DIR / "merges.txt").read_bytes())


def test_import_download_fetches_then_imports(transformers, server, tmp_path, monkeypatch):
    """The whole command, with the hub's address from WRITE_TRANSFORMER_HUB and a small GPT-2 as its files."""
    theirs = hf_gpt2(transformers, tmp_path / "made")
    names = ("config.json", "vocab.json", "merges.txt", "model.safetensors")
    data = {name: (tmp_path / "made" / name).read_bytes() for name in names}
    Hub.files = {f"/gpt2/resolve/main/{name}": body for name, body in data.items()}
    monkeypatch.setitem(hub.MODELS, "gpt2", {name: pinned(body) for name, body in data.items()})
    monkeypatch.setenv(hub.HUB_VARIABLE, server)
    args = ["import", "--download", "gpt2", "--to", str(tmp_path / "gpt2"), "--checkpoint", str(tmp_path / "ck")]
    assert main([*args, "--reference"]) == 0
    assert sorted(Hub.asked) == sorted(f"/gpt2/resolve/main/{name}" for name in names)
    model, _, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(model.transformer.h[0].mlp.c_fc.weight, theirs.transformer.h[0].mlp.c_fc.weight.t())
