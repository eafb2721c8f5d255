"""`generator.engine: vllm`: the Ray Serve LLM config built from the recipe, validated by Ray's own LLMConfig model
(no GPU and no vLLM needed for that; serving on vLLM itself runs only on a GPU cluster)."""

from __future__ import annotations

import pytest

from ecr_ray.config import ConfigError, load_config
from ecr_ray.serve.vllm import SERVED_MODEL, llm_config


def _validated(cfg) -> dict:
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig  # ray.serve.llm imports vLLM itself

    return LLMConfig(**llm_config(cfg)).model_dump(exclude_unset=True)


def test_paper_recipe_on_vllm_serves_the_merged_adapter_in_bf16():
    cfg = load_config(
        "paper",
        {
            "generator.engine": "vllm",
            "offline": True,
            "generator.vllm": {"engine_kwargs": {"tensor_parallel_size": 2}, "accelerator_type": "A10G"},
        },
    )
    c = _validated(cfg)
    assert c["model_loading_config"] == {
        "model_id": SERVED_MODEL,
        "model_source": "/mnt/shared/ecr-runs/paper/generator/merged",
    }
    assert c["engine_kwargs"] == {"dtype": "bfloat16", "max_model_len": 512 + 128, "tensor_parallel_size": 2}
    assert c["accelerator_type"] == "A10G"
    assert c["runtime_env"] == {"env_vars": {"HF_HUB_OFFLINE": "1"}}  # replicas load from the shared cache only


def test_full_fine_tuning_serves_the_model_folder_and_float32_stays_float32(tmp_path):
    cfg = load_config(
        "demo",
        {
            "run_dir": str(tmp_path),
            "generator.engine": "vllm",
            "generator.method": "full",
            "generator.dtype": "float32",
        },
    )
    c = _validated(cfg)
    assert c["model_loading_config"]["model_source"] == str(tmp_path / "generator" / "model")
    assert c["engine_kwargs"]["dtype"] == "float32" and "runtime_env" not in c


def test_bad_engine_settings_name_the_field():
    with pytest.raises(ConfigError, match="generator.engine: expected transformers|vllm"):
        load_config("demo", {"generator.engine": "tgi"})
    with pytest.raises(ConfigError, match=r"generator.vllm: unknown field\(s\) \['engine_kwarg'\]"):
        load_config("demo", {"generator.vllm": {"engine_kwarg": {}}})
