"""Where models come from: embedded models resolve offline; `ecr-ray fetch_models` downloads the recipe's hub models
into HF_HOME (from a Hugging Face hub served on 127.0.0.1 by tests/hub_server.py) and offline runs then load them
from there; gated, unknown and missing models fail with their name and the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecr_ray.config import PROJECT_ROOT, load_config
from ecr_ray.hub import ModelNotAvailable, device, dtype, is_hub_id, recipe_models, resolve
from tests.hub_server import FakeHub


def test_embedded_models_resolve_to_folders_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("minilm", "smollm2"):
        assert (Path(resolve(name, offline=True)) / "config.json").exists()
        assert not is_hub_id(name)
    assert set(recipe_models(load_config("demo")).values()) == {"minilm", "smollm2"}
    assert recipe_models(load_config("paper"))["conversation.base_model"] == "microsoft/DialoGPT-small"


def test_offline_hub_model_missing_from_the_cache_names_it_and_the_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert resolve("roberta-base") == "roberta-base"  # online: transformers downloads on first use
    with pytest.raises(ModelNotAvailable, match=r"'roberta-base' is not in the Hugging Face cache.*fetch_models"):
        resolve("roberta-base", offline=True)


def test_devices_and_dtypes():
    import torch

    assert device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert dtype("auto", "cpu") == torch.float32 and dtype("auto", "cuda:0") == torch.bfloat16
    assert dtype("float32", "cuda") == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no GPU"):
            device("cuda")
    with pytest.raises(ValueError, match="float32\\|bfloat16\\|auto"):
        dtype("float16")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A tiny BERT (MiniLM's tokenizer, a 1-layer random encoder) as `tiny-org/tiny-bert`, a gated repo too."""
    from transformers import BertConfig, BertModel

    repo = tmp_path_factory.mktemp("tiny-bert")
    src = Path(resolve("minilm"))
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / f).exists():
            shutil.copy(src / f, repo / f)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(cfg).save_pretrained(repo)
    server = FakeHub({"tiny-org/tiny-bert": repo}, gated=("meta-llama/Llama-2-7b-chat-hf",))
    yield server
    server.close()


def _recipe(tmp_path: Path, models: dict[str, str]) -> Path:
    """A recipe extending demo with `models` ("section.field" → model name)."""
    lines = ["extends: demo", f"run_dir: {tmp_path / 'run'}"]
    for dotted, value in models.items():
        section, field = dotted.split(".")
        lines.append(f"{section}:\n  {field}: {value}")
    path = tmp_path / "recipe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(args: list[str], env: dict, code: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "ecr_ray.jobs.fetch_models", *args]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_fetch_models_then_load_offline(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    # Two fields naming one model (as the paper recipe's recommender.plm and conversation.base_model): one fetch.
    recipe = _recipe(
        tmp_path, {"emotion.classifier_model": "tiny-org/tiny-bert", "conversation.base_model": "tiny-org/tiny-bert"}
    )
    done = _run(["--recipe", str(recipe)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["emotion.classifier_model"]["source"] == "hub"
    assert report["conversation.base_model"] == report["emotion.classifier_model"]
    assert hub.requests.count("GET /api/models/tiny-org/tiny-bert/revision/main") == 1  # one snapshot download
    assert report["recommender.text_encoder"] == {"model": "minilm", "source": "embedded"}
    assert any(r.startswith("GET /tiny-org/tiny-bert/resolve/") for r in hub.requests)

    # Offline, with the hub gone from the environment: the model loads from HF_HOME.
    offline = {k: v for k, v in env.items() if k != "HF_ENDPOINT"} | {"HF_HUB_OFFLINE": "1"}
    code = (
        "from transformers import AutoModel, AutoTokenizer\n"
        "from ecr_ray.hub import resolve\n"
        "p = resolve('tiny-org/tiny-bert', offline=True)\n"
        "m = AutoModel.from_pretrained(p); t = AutoTokenizer.from_pretrained(p)\n"
        "print(m.config.hidden_size, len(t('a movie')['input_ids']))"
    )
    loaded = _run([], offline, code)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split() == ["32", "4"]


def test_gated_and_unknown_models_fail_naming_the_model_and_the_token(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    recipe = _recipe(
        tmp_path,
        {"generator.base_model": "meta-llama/Llama-2-7b-chat-hf", "recommender.text_encoder": "nobody/no-such-model"},
    )
    done = _run(["--recipe", str(recipe)], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    err = done.stderr
    assert "generator.base_model: model 'meta-llama/Llama-2-7b-chat-hf' is gated" in err and "HF_TOKEN" in err
    assert "recommender.text_encoder: model 'nobody/no-such-model' is not on the Hugging Face hub" in err
