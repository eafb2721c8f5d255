"""The ECR service on Ray Serve: EmotionDetector → Recommender → Generator behind one FastAPI ingress.

    serve run ecr_ray.serve.app:app recipe=demo [run_dir=...] [data_dir=...]
    ecr-ray serve --recipe demo             # the same, started from the recipe; prints the URL
    ecr-ray serve --recipe cpu --write-config serve.yaml && serve run serve.yaml   # + the base model at /llm

The three model deployments are thin wrappers around the predictors (`ecr_ray.<stage>.predictor`); the ingress
validates requests (`ecr_ray/api.py`), keeps multi-turn sessions and runs the reply's steps (`ecr_ray/reply.py`, the
same the generator's evaluation runs) on the deployments through DeploymentHandles. Deployment options (replicas,
autoscaling, CPUs/GPUs) come from the recipe's `serve.deployments`; `app(args)` builds the application from a recipe,
importing this module builds nothing.
"""

import asyncio
import json
import logging
import os
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ecr_ray import reply
from ecr_ray.api import APIError, AppArgs, BearerAuth, Models, SecurityHeaders, StopCutter, install_errors, read_json
from ecr_ray.config import EMOTIONS, Config
from ecr_ray.conversation.predictor import ConversationPredictor
from ecr_ray.data.tables import check_run_data
from ecr_ray.emotion.predictor import EmotionPredictor
from ecr_ray.generator.predictor import GeneratorPredictor
from ecr_ray.hub import device, inference_dtype
from ecr_ray.prompts import compose_response, context_turn
from ecr_ray.recommender.predictor import RecommenderPredictor
from ecr_ray.stages import check_built_by_this_code
from ecr_ray.text_cache import TextCache

from . import sessions
from .deploy import APP_NAME, check_fits
from .vllm import generator_app

STATIC_DIR = Path(__file__).resolve().parent / "static"
# A replica that died mid-request (or is being replaced) is retried: every model call here is idempotent.
RETRYABLE = (RayActorError, ActorUnavailableError, ReplicaUnavailableError, DeploymentUnavailableError)
STREAM_ATTEMPTS = 4  # a stream is retried only before its first token
log = logging.getLogger("ray.serve")


def _replica_env() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the replica's threads are Serve's, not the tokenizer's


# ----------------------------------------------------------------------------- model deployments


@serve.deployment
class EmotionDetector:
    """User-turn emotion probabilities (9 labels, `ecr_ray.config.EMOTIONS` order)."""

    def __init__(self, cfg: Config):
        _replica_env()

        on = device(cfg.emotion.device)
        predictor = EmotionPredictor.load(cfg, inference_dtype(cfg.serve.encoder_dtype, on), on)
        # Clients re-send the history with every request: each replica classifies a text once.
        self.probs = TextCache(predictor.predict, cfg.serve.text_cache_size)
        # Batch sizes and waits come from the recipe (serve.max_batch_size, serve.batch_wait_timeout_s).
        self.predict.set_max_batch_size(cfg.serve.max_batch_size)
        self.predict.set_batch_wait_timeout_s(cfg.serve.batch_wait_timeout_s)

    @serve.batch
    async def predict(self, requests: list[list[str]]) -> list[list[list[float]]]:
        # Concurrent requests' texts go through the encoder as one batch; the split restores per-request lists.
        texts = [t for r in requests for t in r]
        probs = await asyncio.to_thread(self.probs, texts) if texts else np.zeros((0, len(EMOTIONS)))
        out, i = [], 0
        for r in requests:
            out.append(np.asarray(probs[i : i + len(r)], dtype=float).tolist())
            i += len(r)
        return out

    def ready(self) -> bool:
        return True


@serve.deployment
class Recommender:
    """Top-k movies for a dialogue and its user-turn emotions, with the entities/emotions that drove the ranking.

    User turns that arrive without emotions are sent to EmotionDetector while this replica encodes the dialogue's
    turns: the two MiniLM passes run side by side on different cores instead of one after the other. The answers
    are remembered per text, so a re-sent history costs no EmotionDetector call at all."""

    def __init__(self, cfg: Config, emotion: DeploymentHandle):
        _replica_env()

        self.emotion = emotion
        self.emotion_memo = TextCache(maxsize=cfg.serve.text_cache_size)  # text → EmotionDetector's probabilities
        self.predictor = RecommenderPredictor.load(
            cfg, cache_size=cfg.serve.text_cache_size, encoder_dtype=cfg.serve.encoder_dtype
        )
        # From the recipe: serve.recommender_batch_size, serve.recommender_batch_wait_s.
        self._recommend.set_max_batch_size(cfg.serve.recommender_batch_size)
        self._recommend.set_batch_wait_timeout_s(cfg.serve.recommender_batch_wait_s)

    async def _classify(self, texts: list[str]) -> list[list[float]]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(4),
            wait=wait_exponential(multiplier=0.25, max=2),
            reraise=True,
        ):
            with attempt:  # an EmotionDetector replica that died mid-call is retried on another one
                return await self.emotion.predict.remote(texts)

    async def recommend(self, dialogue: list[dict], user_emotions: list[list[float] | None], top_k: int) -> dict:
        """`user_emotions`: per turn, 9 probabilities or None; user turns left None are classified here. The answer
        carries the completed `user_emotions` (None for recommender turns)."""
        emotions = list(user_emotions)
        need = [i for i, t in enumerate(dialogue) if t["role"] == "user" and emotions[i] is None]
        memo = self.emotion_memo.lookup([dialogue[i]["text"] for i in need])
        for i in need:
            if dialogue[i]["text"] in memo:
                emotions[i] = memo[dialogue[i]["text"]].tolist()
        need = [i for i in need if emotions[i] is None]
        if need:
            texts = [dialogue[i]["text"] for i in need]
            probs, _ = await asyncio.gather(
                self._classify(texts), asyncio.to_thread(self.predictor.encode_dialogue, dialogue)
            )
            self.emotion_memo.store(texts, probs)
            for i, p in zip(need, probs):
                emotions[i] = p
        arrays = [None if e is None else np.asarray(e, dtype=np.float32) for e in emotions]
        out = await self._recommend((dialogue, arrays, int(top_k)))
        if isinstance(out, Exception):
            raise out
        return {**out, "user_emotions": emotions}

    @serve.batch
    async def _recommend(self, requests: list[tuple]) -> list:
        # Concurrent requests are scored in one forward pass; a bad dialogue fails alone, not its batch-mates.
        try:
            return await asyncio.to_thread(self.predictor.recommend_batch, *map(list, zip(*requests)))
        except ValueError as e:
            if len(requests) == 1:
                return [e]
        return [await asyncio.to_thread(self._one, *r) for r in requests]

    def _one(self, dialogue, emotions, top_k):
        try:
            return self.predictor.recommend(dialogue, emotions, top_k)
        except ValueError as e:
            return e

    def ready(self) -> bool:
        return True


@serve.deployment
class Generator:
    """Emotion-aligned reply for the recommended movie, continuing the recommendation sentence."""

    def __init__(self, cfg: Config):
        _replica_env()

        self.predictor = GeneratorPredictor.load(cfg)
        self.conversation = ConversationPredictor.load(cfg)  # None without a trained module: templates
        # From the recipe: serve.generator_batch_size, serve.generator_batch_wait_s.
        self._respond.set_max_batch_size(cfg.serve.generator_batch_size)
        self._respond.set_batch_wait_timeout_s(cfg.serve.generator_batch_wait_s)

    async def respond(self, item_entity_id: int, first_sentence: str, **gen_kwargs) -> dict:
        return await self._respond((int(item_entity_id), first_sentence, tuple(sorted(gen_kwargs.items()))))

    @serve.batch
    async def _respond(self, requests: list[tuple[int, str, tuple]]) -> list[dict]:
        # Concurrent replies are decoded together (one forward per step for the whole batch); requests with
        # different generation settings go in separate sub-batches.
        out: list = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, (_, _, kw) in enumerate(requests):
            groups.setdefault(kw, []).append(i)
        for kw, idx in groups.items():
            pairs = [(requests[i][0], requests[i][1]) for i in idx]
            for i, r in zip(idx, await asyncio.to_thread(self.predictor.respond_batch, pairs, **dict(kw))):
                out[i] = r
        return out

    def stream(self, item_entity_id: int, first_sentence: str, **gen_kwargs):
        yield from self.predictor.stream(item_entity_id, first_sentence, **gen_kwargs)

    async def recommendation(self, dialogue: list[dict], names: list[str], template: str) -> dict:
        """u_r: the conversation module's turn with its slots filled by `names`, or `template` (source says which)."""
        return (await asyncio.to_thread(reply.recommendations, self.conversation, [dialogue], [names], [template]))[0]

    def ready(self) -> bool:
        return True


# ----------------------------------------------------------------------------- ingress

api = FastAPI(
    title="ECR: empathetic conversational recommender",
    version="0.1.0",
    description="POST /v1/recommend, OpenAI-compatible POST /v1/chat/completions, web chat at /",
)
api.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
api.add_middleware(SecurityHeaders)
install_errors(api)


# Defined above the ingress: its routes keep the module globals they saw when Serve wrapped the class.
async def answers_sessions(store, timeout_s: float) -> int | None:
    """How many sessions the shared store holds, or None when it does not answer in time."""
    try:
        return await asyncio.wait_for(store.size.remote(), timeout_s)
    except Exception:
        return None


# serve.ingress pickles the class when it is decorated: every helper it uses must be defined above it.
@serve.deployment
@serve.ingress(api)
class ECRIngress:
    def __init__(
        self, cfg: Config, emotion: DeploymentHandle, recommender: DeploymentHandle, generator: DeploymentHandle
    ):
        self.cfg, self.limits = cfg, cfg.serve
        self.models = Models(cfg.serve)
        self.emotion, self.recommender, self.generator = emotion, recommender, generator
        # Sessions live in one actor every ingress replica shares (sessions.py); its name follows the run.
        sc = cfg.serve
        self.sessions = sessions.connect(
            f"sessions:{cfg.run_path}", sc.max_sessions, sc.session_ttl_s, sc.max_sessions_per_client
        )
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # The tokens are read from this replica's environment, never from the config (no secrets in files/logs).
        self.auth = BearerAuth(cfg.serve.api_token_env)

    # ---- helpers

    def _body(self, request: Request):
        return read_json(request, self.limits.max_body_bytes, self.limits.body_timeout_s)

    def _caller(self, request: Request) -> tuple[str, str | None]:
        """(client, owner): who is asking (401 without a valid token when auth is on) and, with auth, the identity
        its sessions are bound to."""
        client = self.auth.client(request)
        return client, (client if self.auth.tokens else None)

    @staticmethod
    def _no_session(sid: str) -> APIError:
        return APIError(
            404,
            f"session {sid!r} not found (expired, ended, or not yours): start one with POST /v1/sessions, or send "
            f"the whole dialogue without session_id",
            param="session_id",
            code="session_not_found",
        )

    async def _call(self, what: str, method, *args, **kwargs) -> Any:
        """One model call with a deadline, retried if the replica died; failures → 503/504/502 JSON errors."""

        async def once():
            return await method.remote(*args, **kwargs)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RETRYABLE),
                stop=stop_after_attempt(4),
                wait=wait_exponential(multiplier=0.25, max=2),
                reraise=True,
            ):
                with attempt:
                    return await asyncio.wait_for(once(), self.limits.request_timeout_s)
        except TimeoutError:
            raise APIError(
                504, f"{what} did not answer within {self.limits.request_timeout_s:.0f} s", code="timeout"
            ) from None
        except (*RETRYABLE, BackPressureError):
            raise APIError(
                503, f"{what} is unavailable (restarting or overloaded); retry shortly", code="unavailable"
            ) from None
        except RayTaskError as e:
            raise APIError(
                502, f"{what} failed: {type(e.cause).__name__}: {str(e.cause)[:200]}", code="component_error"
            ) from None

    async def _answer(
        self, dialogue: list[dict], cache: list, top_k: int, generate: bool, gen: dict, write_ur: bool | None = None
    ) -> dict:
        """The reply (`ecr_ray.reply`'s steps through the deployments) to one dialogue; fills `cache` (per-turn
        emotion probs) for new user turns. `generate`: u_e too; `write_ur` (default: `generate`): u_r by the
        conversation module rather than the template."""
        # The Recommender classifies the user turns not in `cache` (EmotionDetector) while it encodes the dialogue.
        ranking = await self._call(
            "recommender", self.recommender.recommend, dialogue, reply.known_emotions(dialogue, cache), top_k
        )
        for i, p in enumerate(ranking["user_emotions"]):
            if dialogue[i]["role"] == "user" and cache[i] is None:
                cache[i] = p
        items = reply.ranked_items(ranking)
        ur = {"text": reply.template_sentence(dialogue, cache, items), "source": reply.TEMPLATE}
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        if (generate if write_ur is None else write_ur) and items:  # the conversation module's u_r, if the run has one
            ur = await self._call(
                "generator", self.generator.recommendation, dialogue, reply.slot_names(items), ur["text"]
            )
            reply.add_usage(usage, ur.get("usage"))
        ue = None
        if generate and items:
            ue = await self._call("generator", self.generator.respond, items[0]["entity_id"], ur["text"], **gen)
            reply.add_usage(usage, ue.get("usage"))
        return reply.compose(dialogue, cache, items, ranking, ur, ue, usage)

    def _gen_kwargs(
        self,
        max_new_tokens: int | None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> dict:
        n = max_new_tokens or self.cfg.generator.max_new_tokens  # the recipe's length unless the client asks
        gen: dict = {"max_new_tokens": min(n, self.limits.max_new_tokens)}
        for name, value in (("temperature", temperature), ("top_p", top_p), ("seed", seed)):
            if value is not None:
                gen[name] = value
        return gen

    # ---- routes

    @api.get("/", include_in_schema=False)
    async def index(self):
        return FileResponse(STATIC_DIR / "index.html")

    @api.get("/livez")
    async def livez(self):
        """Liveness of this ingress replica alone: no model or store is asked (a liveness probe)."""
        return {"status": "ok"}

    @api.get("/healthz")
    async def healthz(self):
        """Readiness: 200 only when every model deployment answers within `serve.health_timeout_s` (its replicas
        have loaded their models), else 503 naming the ones that do not — a replica still loading, or none left."""

        async def answers(h) -> bool:
            try:
                return bool(await asyncio.wait_for(h.ready.remote(), self.limits.health_timeout_s))
            except Exception:  # timed out, no replica, replica died: not ready
                return False

        names = ("emotion", "recommender", "generator")
        ready = await asyncio.gather(*(answers(h) for h in (self.emotion, self.recommender, self.generator)))
        body: dict[str, Any] = dict(zip(names, ready))
        body["sessions"] = await answers_sessions(self.sessions, self.limits.health_timeout_s)
        body["status"] = "ok" if all(ready) else "unavailable"
        return JSONResponse(body, status_code=200 if all(ready) else 503)

    @api.get("/v1/models")
    async def list_models(self, request: Request):
        self.auth.client(request)
        return {"object": "list", "data": [self._model()]}

    @api.get("/v1/models/{model_id}")
    async def get_model(self, model_id: str, request: Request):
        self.auth.client(request)
        if model_id != self.limits.model_name:
            raise APIError(
                404,
                f"model {model_id!r} does not exist; available: [{self.limits.model_name!r}]",
                param="model",
                code="model_not_found",
            )
        return self._model()

    def _model(self) -> dict:
        return {"id": self.limits.model_name, "object": "model", "created": 0, "owned_by": "ecr-ray"}

    @api.post("/v1/sessions", status_code=201)
    async def start_session(self, request: Request):
        """A new session: its id is issued here (clients cannot choose one) and, with auth, bound to the caller."""
        client, owner = self._caller(request)
        sid = await self._call("sessions", self.sessions.create, client, owner)
        return {"session_id": sid, "ttl_s": self.limits.session_ttl_s, "max_turns": self.limits.max_turns}

    @api.post("/v1/recommend")
    async def recommend(self, request: Request):
        _, owner = self._caller(request)
        req = self.models.recommend(await self._body(request))
        new = [t.model_dump() for t in req.dialogue]
        gen = self._gen_kwargs(req.max_new_tokens)
        if req.session_id is None:
            out = await self._answer(new, [None] * len(new), req.top_k, req.generate, gen)
            return {**out, "session_id": None}
        lock = self._session_locks.setdefault(req.session_id, asyncio.Lock())
        async with lock:  # this replica answers one request of a session at a time
            out = await self._answer_in_session(req.session_id, owner, new, req.top_k, req.generate, gen)
        return {**out, "session_id": req.session_id}

    async def _answer_in_session(
        self, sid: str, owner: str | None, new: list[dict], top_k: int, generate: bool, gen: dict
    ) -> dict:
        """Answer on the session's history + `new`, then commit; when another replica committed first, answer
        again on the history it left (a few times at most)."""
        keep = self.limits.max_turns
        for _ in range(3):
            session = await self._call("sessions", self.sessions.get, sid, owner)
            if session is None:
                raise self._no_session(sid)
            dialogue = (session.turns + new)[-keep:]
            cache = (session.emotions + [None] * len(new))[-keep:]
            if not any(t["role"] == "user" for t in dialogue):
                raise APIError(400, "dialogue: needs at least one user turn", param="dialogue", code="no_user_turn")
            out = await self._answer(dialogue, cache, top_k, generate, gen)
            # The recommender's next context: the user's words and the items the reply named, not the generated text
            # (u_e, or a generated u_r's other words), whose entities the user never said.
            said = out["response"]["recommendation"]
            turn = {
                "role": "recommender",
                "text": context_turn([it["name"] for it in out["items"] if it["name"] in said]),
            }
            updated = session.extended([*new, turn], [*cache[len(cache) - len(new) :], None], keep)
            done = await self._call("sessions", self.sessions.commit, sid, session.version, updated, owner)
            if done is None:  # expired or ended while this request was answered
                raise self._no_session(sid)
            if done:
                return out
        raise APIError(
            409,
            f"session {sid!r} kept changing under concurrent requests; retry",
            param="session_id",
            code="session_conflict",
        )

    @api.delete("/v1/sessions/{session_id}")
    async def end_session(self, session_id: str, request: Request):
        _, owner = self._caller(request)
        if not await self._call("sessions", self.sessions.delete, session_id, owner):
            raise self._no_session(session_id)
        return {"deleted": session_id}

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        """OpenAI-compatible: the conversation in `messages`, the ECR reply out (`stream: true` → SSE)."""
        self.auth.client(request)
        req, dialogue = self.models.chat(await self._body(request))
        gen = self._gen_kwargs(req.max_new_tokens(), req.temperature, req.top_p, req.seed)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not req.stream:
            out = await self._answer(dialogue, [None] * len(dialogue), self.limits.default_top_k, True, gen)
            final, finish = out["response"]["final"], out["response"]["finish_reason"]
            content = StopCutter(req.stops()).cut(final)
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop" if content != final else finish,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                    }
                ],
                "usage": out["usage"],
                "ecr": out,
            }
        # Stream: emotions + ranking + u_r first (errors still get a proper status), then u_e as it is written.
        out = await self._answer(dialogue, [None] * len(dialogue), self.limits.default_top_k, False, gen, True)
        return StreamingResponse(
            self._sse(cid, created, req, out, gen),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _sse(self, cid: str, created: int, req, out: dict, gen: dict):
        """The reply as OpenAI chunks: u_r as soon as it exists (it names only the recommended items), then u_e a
        sentence at a time as the reply guard passes each (token by token without the guard); up to the first
        `stop` sequence; the last chunk carries `ecr` (items, emotions, explanation, the guard's verdict) and, with
        `stream_options.include_usage`, a chunk with the usage follows, as OpenAI sends it."""
        with_usage = req.include_usage()

        def event(delta: dict | None = None, finish: str | None = None, extra: dict | None = None) -> str:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.model,
                "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}],
                **({"usage": None} if with_usage else {}),
                **(extra or {}),
            }
            return f"data: {json.dumps(chunk)}\n\n"

        cutter = StopCutter(req.stops())
        ur = out["response"]["recommendation"]
        usage = {k: out["usage"][k] for k in ("prompt_tokens", "completion_tokens")}
        yield event({"role": "assistant", "content": ""})
        if text := cutter.feed(compose_response(ur, "")):  # as it opens `final`
            yield event({"content": text})
        guard: dict = {"checked": False}
        finish = "stop"
        if out["items"] and not cutter.stopped:
            sent, attempt = False, 0
            while True:
                try:
                    handle = self.generator.options(stream=True)
                    async for piece in handle.stream.remote(out["items"][0]["entity_id"], ur, **gen):
                        if isinstance(piece, dict):  # the reply guard's verdict, after the text
                            guard = dict(piece)
                            reply.add_usage(usage, guard.pop("usage", None))
                            finish = guard.pop("finish_reason", finish)
                        elif piece:
                            if not sent and not piece[:1].isspace():
                                piece = " " + piece  # as in `final`: u_r, a space, u_e
                            sent = True
                            if text := cutter.feed(piece):
                                yield event({"content": text})
                            if cutter.stopped:
                                break
                    break
                except Exception as e:
                    attempt += 1
                    # A replica that died (or was being replaced) before its first token: ask another one, as
                    # `_call` does; once tokens went out a retry would repeat them.
                    if not sent and isinstance(e, RETRYABLE) and attempt < STREAM_ATTEMPTS:
                        log.warning("stream: generator gone before a token (%s), retry %d", type(e).__name__, attempt)
                        await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
                        continue
                    # Headers are sent: report in-band, as OpenAI does, and still end the stream properly.
                    err = APIError(503, f"generator failed while streaming ({type(e).__name__})", code="stream_error")
                    yield f"data: {json.dumps(err.body())}\n\n"
                    yield event(finish="error")
                    yield "data: [DONE]\n\n"
                    return
        if text := cutter.close():
            yield event({"content": text})
        ecr = {k: out[k] for k in ("items", "user_emotions", "explanation")}
        ecr["recommendation_source"] = out["response"]["recommendation_source"]
        yield event(finish="stop" if cutter.stopped else finish, extra={"ecr": {**ecr, "guard": guard}})
        if with_usage:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model}
            yield f"data: {json.dumps({**body, 'choices': [], 'usage': reply.total_usage(usage)})}\n\n"
        yield "data: [DONE]\n\n"


# ----------------------------------------------------------------------------- application


def build_app(cfg: Config) -> serve.Application:
    """The ECR application: ingress bound to the three model deployments, options from `cfg.serve.deployments`.
    Refused (`RunDataMismatch`) when the data the config reads are not those the run was built from, and
    (`ConfigError`) when an older ecr-ray built it."""
    cfg = cfg.with_absolute_paths()  # replicas may run in another working directory
    check_run_data(cfg)
    check_built_by_this_code(cfg)
    opts = cfg.serve.deployment_options
    emotion = EmotionDetector.options(**opts("EmotionDetector")).bind(cfg)
    recommender = Recommender.options(**opts("Recommender")).bind(cfg, emotion)
    if cfg.generator.engine == "vllm":  # the model on vLLM (Ray Serve LLM), prompts in a small Generator replica
        generator = generator_app(cfg, opts("Generator"))
    else:
        generator = Generator.options(**opts("Generator")).bind(cfg)
    return ECRIngress.options(**opts("ECRIngress")).bind(cfg, emotion, recommender, generator)


def app(args: AppArgs) -> serve.Application:
    """Typed application builder: Serve validates `args` against AppArgs; the deployments must fit the cluster."""
    cfg = args.config()
    check_fits(cfg, args.apps or [APP_NAME])
    return build_app(cfg)
