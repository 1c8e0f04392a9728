"""The reference GPT is exactly GPT-2: same weights in, same logits and loss out as Hugging Face's model.

The reference's weights are copied into `transformers`' GPT2LMHeadModel of the same configuration (randomly
initialised, nothing downloaded), and both models read the same tokens in float32, eval mode.
"""

import warnings

import pytest
import torch

from kata.hf import to_hf_state_dict  # the mapping `course.py export` writes with
from solutions.step03_embeddings import GPTConfig
from solutions.step08_gpt import GPT

transformers = pytest.importorskip("transformers")


def hf_twin(config: GPTConfig):
    """A Hugging Face GPT2LMHeadModel with our configuration: tanh GELU, eps 1e-5, no dropout."""
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=config.d_ff, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
    )
    return transformers.GPT2LMHeadModel(hf_config)


def load_into_hf(model: GPT):
    """Copy `model`'s weights into a new Hugging Face twin, requiring every one of its tensors to be set.

    Non-persistent buffers (a causal mask, in some versions of transformers) are not part of a state dict,
    so they are neither missing nor expected.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        hf = hf_twin(model.config)
    mapped = to_hf_state_dict(model.state_dict())
    result = hf.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys, f"names Hugging Face does not know: {sorted(result.unexpected_keys)}"
    assert not result.missing_keys, f"Hugging Face tensors that received no weight: {sorted(result.missing_keys)}"
    for name, _ in hf.named_parameters():
        assert name in mapped, f"the Hugging Face parameter {name} received no weight"
    return hf.eval()


CONFIGS = [
    # (config, T): d_ff != 4 * n_embd, T < block_size; then GPT-2's own 4x width at T = block_size.
    (GPTConfig(block_size=16, vocab_size=97, n_layer=2, n_head=3, n_embd=24, d_ff=40), 11),
    (GPTConfig(block_size=8, vocab_size=64, n_layer=3, n_head=2, n_embd=16, d_ff=64), 8),
]


@pytest.mark.parametrize("config,T", CONFIGS, ids=["dff40-T11of16", "dff64-T8of8"])
def test_logits_equal_hugging_face_gpt2(config, T):
    torch.manual_seed(0)
    model = GPT(config).eval()
    # Make the biases and LayerNorm gains non-trivial, so a mapping that drops them cannot pass.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf = load_into_hf(model)
    idx = torch.randint(0, config.vocab_size, (3, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    assert ours.shape == theirs.shape, f"logits shape {tuple(ours.shape)} != Hugging Face's {tuple(theirs.shape)}"
    diff = (ours - theirs).abs().max().item()
    assert diff < 1e-5, f"logits differ from Hugging Face GPT-2 by up to {diff:.2e}"


@pytest.mark.parametrize("config,T", CONFIGS, ids=["dff40-T11of16", "dff64-T8of8"])
def test_loss_equals_hugging_face_gpt2(config, T):
    torch.manual_seed(0)
    model = GPT(config).eval()
    hf = load_into_hf(model)
    idx = torch.randint(0, config.vocab_size, (2, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        # Hugging Face shifts the labels inside: position t is scored on labels[:, t + 1].
        theirs = hf(idx, labels=idx).loss
        # Ours takes targets already shifted: read idx[:, :-1], predict idx[:, 1:] ...
        _, shifted = model(idx[:, :-1], idx[:, 1:])
        # ... or read all of idx and leave the last position out with a target of -1.
        targets = torch.cat([idx[:, 1:], torch.full((2, 1), -1)], dim=1)
        _, ignored = model(idx, targets)
    for name, ours in (("shifted", shifted), ("ignore_index", ignored)):
        diff = abs(ours.item() - theirs.item())
        assert diff < 1e-5, f"loss ({name}) {ours.item():.6f} != Hugging Face's {theirs.item():.6f}"
