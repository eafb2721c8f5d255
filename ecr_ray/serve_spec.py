"""The Serve applications a config deploys, and what they reserve, with no Serve imported: the deployments of each
application, Ray Serve LLM's config of a chat model (`generator.engine: vllm`) and the GPUs/CPUs its engine's placement
group takes. Below both the serving layer (serve/deploy.py checks a deployment fits, serve/vllm.py builds it) and the
cluster pre-flight check (cluster.py), which reads the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Config, ServeConfig
from .generator.model import MERGED_DIR, MODEL_DIR

APP_NAME, LLM_NAME = ServeConfig.APPS
SERVED_MODEL = "ecr-generator"
"""The model id of the trained generator on Ray Serve LLM."""


def llm_deployment_name(model_id: str, server_cls: str = "LLMServer") -> str:
    """The name Ray Serve LLM gives the deployment of `model_id`: `build_llm_deployment` prefixes the class name to
    `_get_deployment_name` (ray/llm/_internal/serve/core/server/builder.py:37-38, 63-73)."""
    return f"{server_cls}:{model_id.replace('/', '--').replace('.', '_')}"


def model_source(cfg: Config) -> str:
    """What vLLM loads: the merged (LoRA) or fully fine-tuned weights of the run."""
    return str(cfg.run_path / "generator" / (MERGED_DIR if cfg.generator.method == "lora" else MODEL_DIR))


def vllm_config(cfg: Config, model_id: str, source: str) -> dict[str, Any]:
    """The Ray Serve LLM config (a dict Ray's `LLMConfig` validates) of chat model `source` served as `model_id`, from
    the recipe (`generator.vllm` adds or overrides fields)."""
    g = cfg.generator
    extra = dict(g.vllm)
    engine = {
        "dtype": "float32" if g.dtype == "float32" else "bfloat16",
        "max_model_len": g.max_length + g.max_new_tokens,
        **extra.pop("engine_kwargs", {}),
    }
    out: dict[str, Any] = {
        "model_loading_config": {"model_id": model_id, "model_source": source},
        "engine_kwargs": engine,
        "deployment_config": extra.pop(
            "deployment_config", {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
        ),
    }
    if cfg.offline:
        out["runtime_env"] = {"env_vars": {"HF_HUB_OFFLINE": "1"}}
    out.update(extra)
    return out


def llm_config(cfg: Config) -> dict[str, Any]:
    """The Ray Serve LLM config of the trained generator, from the recipe (generator.vllm adds or overrides fields)."""
    return vllm_config(cfg, SERVED_MODEL, model_source(cfg))


def deployments(cfg: Config, app: str) -> list[str]:
    """The deployments application `app` holds with this config (what `serve status` lists). With `generator.engine:
    vllm` the ECR application holds VLLMGenerator and Ray Serve LLM's deployment of the generator in place of
    Generator; the `llm` application is then Ray Serve LLM's OpenAI app, whose deployments it names itself."""
    vllm = cfg.generator.engine == "vllm"
    own = cfg.serve.app_deployments(app, cfg.generator.engine)
    return [*own, llm_deployment_name(SERVED_MODEL)] if vllm and app == APP_NAME else own


def vllm_demand(cfg: Config, deployment: str) -> tuple[int, float, float] | None:
    """(replicas at the largest scale, CPUs, GPUs) of Ray Serve LLM's generator deployment when `deployment` is it,
    else None: its replica's CPUs (Ray's default 1) in the first bundle of the engine's placement group, whose bundles
    are `generator.vllm.placement_group_config` (`bundles`, or `bundle_per_worker` per tensor/pipeline-parallel rank)
    or by default one `{GPU: 1}` per rank (LLMServer.get_deployment_options, VLLMEngineConfig.placement_bundles:
    ray/llm/_internal/serve/core/server/llm_server.py:783-838, engines/vllm/vllm_models.py:266-297)."""
    if deployment != llm_deployment_name(SERVED_MODEL):
        return None
    c = llm_config(cfg)
    d, e = c["deployment_config"], c["engine_kwargs"]
    replicas = (d.get("autoscaling_config") or {}).get("max_replicas", d.get("num_replicas", 1))
    ranks = int(e.get("tensor_parallel_size", 1)) * int(e.get("pipeline_parallel_size", 1))
    pg = c.get("placement_group_config") or {}
    if pg.get("bundle_per_worker") is not None:
        bundles = [pg["bundle_per_worker"]] * ranks
    else:
        bundles = pg.get("bundles") or [{"GPU": 1}] * ranks
    cpus = float((d.get("ray_actor_options") or {}).get("num_cpus", 1.0)) + sum(b.get("CPU", 0) for b in bundles)
    return int(replicas), cpus, float(sum(b.get("GPU", 0) for b in bundles))


@dataclass(frozen=True)
class Reservation:
    """What one deployment reserves at its largest scale: `replicas` × `bundle` (Ray resource → amount), at most
    `max_per_node` replicas on a node (0 = no limit); `field` is the recipe field that sizes it."""

    deployment: str
    field: str
    replicas: int
    bundle: dict[str, float]
    max_per_node: int = 0


def reservations(cfg: Config, apps: list[str]) -> list[Reservation]:
    """Every deployment of the named applications with what it reserves. Serve's own default is 1 CPU for a
    deployment that names none; Ray Serve LLM's generator deployment is sized by generator.vllm (`vllm_demand`)."""
    out = []
    for app in apps:
        for name in deployments(cfg, app):
            vllm = vllm_demand(cfg, name)
            if vllm is not None:
                replicas, cpus, gpus = vllm
                out.append(
                    Reservation(name, "generator.vllm", replicas, {"CPU": cpus, **({"GPU": gpus} if gpus else {})})
                )
                continue
            o = cfg.serve.deployment_options(name)
            actor = o.get("ray_actor_options") or {}
            bundle = {"CPU": float(actor.get("num_cpus", 1.0))}
            if actor.get("num_gpus"):
                bundle["GPU"] = float(actor["num_gpus"])
            bundle.update({k: float(v) for k, v in (actor.get("resources") or {}).items()})
            replicas = (o.get("autoscaling_config") or {}).get("max_replicas", o.get("num_replicas", 1))
            field = f"serve.deployments.{name}"
            out.append(Reservation(name, field, int(replicas), bundle, int(o.get("max_replicas_per_node", 0))))
    return out


def demand(cfg: Config, apps: list[str]) -> dict[str, tuple[int, float, float]]:
    """deployment → (replicas at the largest scale, CPUs each, GPUs each) of the named applications."""
    return {r.deployment: (r.replicas, r.bundle["CPU"], r.bundle.get("GPU", 0.0)) for r in reservations(cfg, apps)}


def ray_serve_llm():
    """Ray Serve LLM's `ray.serve.llm`, with its `openai_api_models` (vLLM's protocol models: the `gpu` extra)."""
    try:
        import ray.serve.llm as serve_llm
        import ray.serve.llm.openai_api_models  # noqa: F401  (serve_llm.openai_api_models)
    except ImportError as e:
        raise ImportError(
            f'generator.engine: vllm needs Ray Serve LLM and vLLM on the serving nodes (`pip install "ecr-ray[gpu]"`, '
            f"the -gpu image): {e}"
        ) from e
    return serve_llm
