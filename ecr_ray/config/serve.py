"""The `serve` section: the Ray Serve application, its limits, sessions and deployments."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .base import (
    STRICT,
    _check,
)

SERVE_DEFAULT_MAX_ONGOING_REQUESTS = 5
SERVE_DEFAULT_TARGET_ONGOING_REQUESTS = 2
"""Ray Serve's values for a deployment that leaves the option unset (ray/serve/_private/constants.py:290-291)."""


@dataclass
class ServeConfig:
    """Ray Serve application (`serve/app.py`): limits on client input, sessions, and per-deployment options."""

    __pydantic_config__ = STRICT

    host: str = "127.0.0.1"
    """Bind address of the HTTP proxy (`ecr-ray serve`); keep 127.0.0.1 unless behind an authenticating proxy."""
    port: int = 8000
    proxy_location: str = "HeadOnly"
    """`HeadOnly`: one HTTP proxy, on the head (a laptop; several nodes on one machine) | `EveryNode`: a proxy on every
    node, behind your load balancer (KubeRay's Serve service)."""
    check_resources: bool = True
    """Before deploying, require the deployments at their largest scale to fit the cluster's resources, and fail
    naming them and the shortfall instead of waiting forever. Turn off on clusters that add nodes on demand."""
    model_name: str = "ecr"
    """Model id reported by GET /v1/models and expected in chat-completion requests."""
    max_turns: int = 50
    """Most turns in one request's dialogue (and kept in one session: older turns are dropped first)."""
    max_chars: int = 4000
    """Most characters in one turn's text."""
    max_body_bytes: int = 262144
    """Larger request bodies are refused (413) before they are parsed."""
    default_top_k: int = 5
    max_top_k: int = 50
    max_new_tokens: int = 64
    """Cap on generated tokens per reply (a request may ask for fewer)."""
    max_sessions: int = 1000
    """Sessions kept in memory (least recently used evicted first)."""
    max_sessions_per_client: int = 100
    """Most sessions one client (a bearer token; without auth an IP address) holds; its least recently used one
    makes room for a new one. A backend that talks for many users through one token needs it raised."""
    session_ttl_s: float = 3600.0
    """A session idle for longer than this is forgotten."""
    api_token_env: str = "ECR_API_TOKEN"
    """Environment variable holding the bearer token(s); unset or empty = no authentication. Several tokens,
    comma-separated, make several clients."""
    body_timeout_s: float = 10.0
    """A request body must arrive in full within this many seconds of the service starting to read it (→ 408)."""
    header_timeout_s: float = 10.0
    """The request line and headers must arrive within this many seconds (→ 408, connection closed). Enforced in
    Serve's HTTP proxy (serve/guard.py), which reads it from the Ray processes' environment."""
    max_header_bytes: int = 16384
    """Most bytes of request line + headers (→ 431, connection closed); in the proxy like header_timeout_s."""
    llm_max_messages: int = 32
    """/llm: most messages in one chat-completion request."""
    llm_max_chars: int = 16000
    """/llm: most characters in one message (the labelling prompt with its history stays well below)."""
    llm_max_tokens: int = 256
    """/llm: cap on max_tokens / max_completion_tokens (a request asking for more is refused, 400)."""
    health_timeout_s: float = 2.0
    """/healthz: how long each model deployment has to answer before the service reports itself not ready (503)."""
    request_timeout_s: float = 120.0
    """Deadline for one request's calls to the model deployments (→ 504 when exceeded)."""
    max_batch_size: int = 16
    """`@serve.batch` size for emotion classification (texts of concurrent requests share one encoder pass)."""
    batch_wait_timeout_s: float = 0.0
    """How long a batch waits for batch-mates. 0 = opportunistic: requests that queue while the model runs form the
    next batch, and a lone request never waits (measured: 5 ms + 2 ms of waits were a third of a cached request)."""
    recommender_batch_size: int = 8
    """`@serve.batch` size for recommendation (concurrent dialogues scored in one forward pass)."""
    recommender_batch_wait_s: float = 0.0
    """Like batch_wait_timeout_s, for the Recommender's batches."""
    text_cache_size: int = 10000
    """Texts whose emotion probabilities / turn embeddings each replica keeps (LRU): clients re-send the history with
    every request, and only turns a replica has not seen go through the encoders."""
    encoder_dtype: str = "auto"
    """dtype of the serving text encoders (emotion classifier, recommender context encoder): float32 | bfloat16 |
    auto (= bfloat16 on CPUs with native bf16 matmul, ~1.6x faster MiniLM; float32 elsewhere)."""
    generator_batch_size: int = 4
    """`@serve.batch` size for reply generation (concurrent replies decoded together, left-padded)."""
    generator_batch_wait_s: float = 0.02
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Ray Serve options per deployment (num_replicas or autoscaling_config, ray_actor_options, max_ongoing_requests,
    ...); a recipe's entry replaces the default entry of that deployment."""

    DEPLOYMENTS = ("ECRIngress", "EmotionDetector", "Recommender", "Generator")
    """The deployments of the ECR application (with `generator.engine: vllm`, `VLLMGenerator` in place of Generator,
    and Ray Serve LLM's own, sized by `generator.vllm`); `ChatModel` is the base-model endpoint of the `llm`
    application."""
    ALL_DEPLOYMENTS = (*DEPLOYMENTS, "VLLMGenerator", "ChatModel")
    APPS = ("ecr", "llm")
    """The Serve applications: the ECR service at `/` and the base-model endpoint at `/llm`."""
    OPTIONS = (
        "num_replicas",
        "autoscaling_config",
        "ray_actor_options",
        "max_ongoing_requests",
        "max_queued_requests",
        "health_check_period_s",
        "health_check_timeout_s",
        "graceful_shutdown_timeout_s",
        "graceful_shutdown_wait_loop_s",
        "max_replicas_per_node",
    )

    DEFAULT_DEPLOYMENTS = {  # sized for a 2-core laptop; GPU recipes give Generator num_gpus
        # max_ongoing_requests above Serve's default 5: a request over the limit waits in the caller's router with
        # back-off (cached requests from 32 clients: 8.4 req/s before, 83 after), and batching needs requests in.
        "ECRIngress": {"num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.1}},
        "EmotionDetector": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.25}},
        "Recommender": {
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16},
            "max_ongoing_requests": 64,
            "ray_actor_options": {"num_cpus": 0.25},
        },
        "Generator": {"num_replicas": 1, "max_ongoing_requests": 32, "ray_actor_options": {"num_cpus": 0.5}},
        # engine vllm: prompts and the reply guard only (the model is in Ray Serve LLM's deployment); no GPU
        "VLLMGenerator": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.5}},
        # The /llm app's base model: 0.35 CPU keeps both applications within 2 CPUs at their largest scale
        # (0.1 + 0.25 + 2 × 0.25 + 0.5 + 0.35 = 1.7); it computes on all the cores it finds anyway.
        "ChatModel": {"num_replicas": 1, "max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.35}},
    }

    def __post_init__(self) -> None:
        self.deployments = {**copy.deepcopy(self.DEFAULT_DEPLOYMENTS), **self.deployments}
        _check(0 < self.port < 65536, f"serve.port: out of range: {self.port}")
        _check(bool(self.model_name), "serve.model_name: must not be empty")
        for name in (
            "max_turns",
            "max_chars",
            "max_body_bytes",
            "max_top_k",
            "max_new_tokens",
            "max_sessions",
            "max_sessions_per_client",
            "max_header_bytes",
            "llm_max_messages",
            "llm_max_chars",
            "llm_max_tokens",
            "max_batch_size",
            "generator_batch_size",
            "recommender_batch_size",
        ):
            _check(getattr(self, name) >= 1, f"serve.{name}: must be >= 1, got {getattr(self, name)}")
        _check(
            1 <= self.default_top_k <= self.max_top_k,
            f"serve.default_top_k: must be in [1, max_top_k={self.max_top_k}], got {self.default_top_k}",
        )
        for name in ("session_ttl_s", "request_timeout_s", "body_timeout_s", "header_timeout_s", "health_timeout_s"):
            _check(getattr(self, name) > 0, f"serve.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("batch_wait_timeout_s", "generator_batch_wait_s", "recommender_batch_wait_s"):
            _check(getattr(self, name) >= 0, f"serve.{name}: must be >= 0, got {getattr(self, name)}")
        _check(
            self.encoder_dtype in ("float32", "bfloat16", "auto"),
            f"serve.encoder_dtype: expected float32|bfloat16|auto, got {self.encoder_dtype!r}",
        )
        _check(
            self.proxy_location in ("HeadOnly", "EveryNode"),
            f"serve.proxy_location: expected HeadOnly|EveryNode, got {self.proxy_location!r}",
        )
        _check(self.text_cache_size >= 0, f"serve.text_cache_size: must be >= 0, got {self.text_cache_size}")
        for dep, opts in self.deployments.items():
            _check(
                dep in self.ALL_DEPLOYMENTS,
                f"serve.deployments.{dep}: unknown deployment; known: {self.ALL_DEPLOYMENTS}",
            )
            _check(isinstance(opts, dict), f"serve.deployments.{dep}: expected a mapping of Serve options")
            bad = sorted(set(opts) - set(self.OPTIONS))
            _check(not bad, f"serve.deployments.{dep}: unknown option(s) {bad}; known: {self.OPTIONS}")
            _check(
                not ("num_replicas" in opts and "autoscaling_config" in opts),
                f"serve.deployments.{dep}: set num_replicas or autoscaling_config, not both",
            )
        self._check_ingress_capacity()

    def _check_ingress_capacity(self) -> None:
        """Every request passes ECRIngress, which holds it while it calls each deployment once: the ingress's
        capacity (replicas × max_ongoing_requests) bounds the ongoing requests of every deployment behind it. Below
        what an autoscaled deployment needs to reach its max_replicas (max_replicas × target_ongoing_requests) it
        never gets there, however heavy the load (the paper recipe's 2 ingress replicas at Serve's default of 5 held
        its Generator at 3 of 4 replicas)."""
        ingress = self.deployments.get("ECRIngress", {})
        replicas = int(ingress.get("num_replicas", (ingress.get("autoscaling_config") or {}).get("max_replicas", 1)))
        per_replica = int(ingress.get("max_ongoing_requests", SERVE_DEFAULT_MAX_ONGOING_REQUESTS))
        for dep in (*self.DEPLOYMENTS[1:], "VLLMGenerator"):
            a = self.deployments.get(dep, {}).get("autoscaling_config")
            if not a:
                continue
            need = a.get("max_replicas", 1) * a.get("target_ongoing_requests", SERVE_DEFAULT_TARGET_ONGOING_REQUESTS)
            _check(
                replicas * per_replica >= need,
                f"serve.deployments.ECRIngress: holds at most {replicas * per_replica} requests ({replicas} replicas "
                f"× max_ongoing_requests {per_replica}; Serve's default is {SERVE_DEFAULT_MAX_ONGOING_REQUESTS}), but "
                f"{dep} reaches its max_replicas only at {need} ongoing (max_replicas × target_ongoing_requests): "
                f"set ECRIngress's max_ongoing_requests to at least {-(-need // replicas)}",
            )

    def app_deployments(self, app: str, engine: str) -> list[str]:
        """The deployments of application `app` whose options `deployments` gives, with generator engine `engine`:
        with vllm, VLLMGenerator in place of Generator and no ChatModel (Ray Serve LLM's own deployments are sized
        by generator.vllm)."""
        if app == "llm":
            return [] if engine == "vllm" else ["ChatModel"]
        return ["ECRIngress", "EmotionDetector", "Recommender", "VLLMGenerator" if engine == "vllm" else "Generator"]

    def deployment_options(self, name: str) -> dict[str, Any]:
        """Serve options for one deployment (a recipe's entry replaces the default one wholesale)."""
        return copy.deepcopy(self.deployments.get(name, {}))
