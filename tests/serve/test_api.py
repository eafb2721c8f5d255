"""Request models, limits and sessions of api.py (no Ray: pure validation logic)."""

from __future__ import annotations

import re

import pytest

from ecr_ray.api import SESSION_ID, APIError, Models, StopCutter
from ecr_ray.config import ConfigError, load_config
from ecr_ray.serve.sessions import Session, SessionStore


@pytest.fixture
def models():
    return Models(load_config("demo", {"serve.max_turns": 4, "serve.max_chars": 20, "serve.max_top_k": 7}).serve)


def _err(fn, obj) -> APIError:
    with pytest.raises(APIError) as e:
        fn(obj)
    return e.value


def test_valid_request_gets_defaults(models):
    req = models.recommend({"dialogue": [{"role": "user", "text": "hi"}]})
    assert req.top_k == 5 and req.generate is True and req.session_id is None


@pytest.mark.parametrize(
    "obj,param",
    [
        ({}, "dialogue"),
        ({"dialogue": []}, "dialogue"),
        ({"dialogue": "hi"}, "dialogue"),
        ({"dialogue": [{"role": "bot", "text": "x"}]}, "dialogue[0].role"),
        ({"dialogue": [{"role": "user"}]}, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": 5}]}, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": "   "}]}, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": "x" * 21}]}, "dialogue[0].text"),
        ({"dialogue": [{"role": "user", "text": "x"}] * 5}, "dialogue"),
        ({"dialogue": [{"role": "user", "text": "x"}], "top_k": "3"}, "top_k"),
        ({"dialogue": [{"role": "user", "text": "x"}], "top_k": True}, "top_k"),
        ({"dialogue": [{"role": "user", "text": "x"}], "top_k": 8}, "top_k"),
        ({"dialogue": [{"role": "user", "text": "x"}], "top_k": 0}, "top_k"),
        ({"dialogue": [{"role": "user", "text": "x"}], "session_id": "a b"}, "session_id"),
        ({"dialogue": [{"role": "user", "text": "x"}], "topk": 3}, "topk"),
        ({"dialogue": [{"role": "recommender", "text": "x"}]}, "dialogue"),
    ],
)
def test_invalid_requests_name_the_field(models, obj, param):
    e = _err(models.recommend, obj)
    assert 400 <= e.status < 500
    assert e.body()["error"]["param"] == param and param in e.message


def test_chat_maps_openai_roles(models):
    req, dialogue = models.chat(
        {
            "model": "ecr",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "more"}]},
            ],
        }
    )
    assert [t["role"] for t in dialogue] == ["user", "recommender", "user"] and dialogue[-1]["text"] == "more"


@pytest.mark.parametrize(
    "obj,status,param",
    [
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"model": "ecr", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
        (
            {"model": "ecr", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "messages[0].content",
        ),
        ({"model": "ecr", "messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role"),
        ({"model": "ecr", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
        ({"model": "ecr", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, 400, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        # what neither endpoint does is refused by name, not ignored ...
        (
            {"model": "ecr", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            400,
            "tools",
        ),
        ({"model": "ecr", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, 400, "logprobs"),
        (
            {"model": "ecr", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 0.5},
            400,
            "presence_penalty",
        ),
        (
            {
                "model": "ecr",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            400,
            "response_format",
        ),
        # ... and so is an argument OpenAI does not have (a typo), as OpenAI answers it
        ({"model": "ecr", "messages": [{"role": "user", "content": "x"}], "max_token": 5}, 400, "max_token"),
        (
            {"model": "ecr", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
            400,
            "stop",
        ),
        ({"model": "ecr", "messages": [{"role": "user", "content": "x"}], "stop": [""]}, 400, "stop"),
        (
            {"model": "ecr", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
            400,
            "stream_options",
        ),
    ],
)
def test_chat_errors(models, obj, status, param):
    e = _err(models.chat, obj)
    assert e.status == status and e.body()["error"]["param"] == param


def test_chat_accepts_what_openai_clients_send(models):
    """The "off" values of unsupported parameters, request metadata, stop, seed and stream_options are accepted."""
    req, dialogue = models.chat(
        {
            "model": "ecr",
            "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": "\n\n",
            "seed": 7,
            "user": "client-42",
            "metadata": {"team": "a"},
            "tools": [],
            "logprobs": False,
            "presence_penalty": 0,
            "response_format": {"type": "text"},
        }
    )
    assert dialogue == [{"role": "user", "text": "hi"}]
    assert req.stops() == ["\n\n"] and req.include_usage() and req.seed == 7


@pytest.mark.parametrize(
    "pieces,stops,expected",
    [
        (["Hello wor", "ld. END here"], ["END"], "Hello world. "),
        (["Hello E", "N", "D"], ["END"], "Hello "),
        (["Hello E", "N", "x"], ["END"], "Hello ENx"),  # a held-back start that was not a stop is let out
        (["a\n", "\nb"], ["\n\n", "zz"], "a"),
        (["no stop here"], [], "no stop here"),
    ],
)
def test_stop_sequences_across_stream_pieces(pieces, stops, expected):
    cutter = StopCutter(stops)
    out = "".join(cutter.feed(p) for p in pieces) + cutter.close()
    assert out == expected and cutter.stopped == (expected != "".join(pieces))
    assert StopCutter(stops).cut("".join(pieces)) == expected


def test_sessions_bounded_in_number_and_age():
    now = [0.0]
    store = SessionStore(max_sessions=2, ttl_s=10, clock=lambda: now[0])
    assert store.get("a") is None
    a = store.create("ip:1", None)
    assert store.commit(a, 0, Session(turns=[{"role": "user", "text": "hi"}]))
    assert store.get(a).version == 1
    b = store.create("ip:2", None)
    store.get(a)  # a is now the most recent
    store.create("ip:3", None)  # evicts b, the least recently used
    assert store.get(b) is None and store.get(a).turns[0]["text"] == "hi" and store.size() == 2
    now[0] = 11.0
    assert store.get(a) is None and store.size() == 0  # idle for longer than the TTL
    assert store.commit(a, 1, Session()) is None  # a session that is gone is not recreated by a commit


def test_session_ids_are_issued_unguessable_and_unique():
    store = SessionStore(1000, 10)
    ids = {store.create("ip:1", None) for _ in range(500)}
    assert len(ids) == 500 and all(len(i) == 24 and re.fullmatch(SESSION_ID, i) for i in ids)
    assert store.get("1") is None and store.get("test") is None


def test_sessions_are_bound_to_their_owner():
    store = SessionStore(10, 10)
    sid = store.create("token:a", "token:a")
    assert store.commit(sid, 0, Session(turns=[{"role": "user", "text": "mine"}]), "token:a")
    # Another token sees nothing: not the turns, not a commit, not a delete; nor does a caller without identity.
    for caller in ("token:b", None):
        assert store.get(sid, caller) is None
        assert store.commit(sid, 1, Session(), caller) is None
        assert not store.delete(sid, caller)
    assert store.get(sid, "token:a").turns[0]["text"] == "mine"
    # The owner and client survive a commit whatever the committed copy says.
    assert store.commit(sid, 1, Session(owner=None, client="x"), "token:a")
    assert store.get(sid, "token:b") is None and store.delete(sid, "token:a")


def test_a_client_cannot_evict_other_clients_sessions():
    """Creating 1,000 sessions costs a client only its own oldest ones (the cap per client), never another's."""
    store = SessionStore(max_sessions=100, ttl_s=10, max_per_client=5)
    theirs = [store.create("token:victim", "token:victim") for _ in range(3)]
    mine = [store.create("token:flood", "token:flood") for _ in range(1000)]
    assert all(store.get(s, "token:victim") is not None for s in theirs)
    assert [s for s in mine if store.get(s, "token:flood") is not None] == mine[-5:]
    assert store.size() == 8
    assert store.delete(mine[-1], "token:flood") and store.size() == 7


def test_session_commits_are_compare_and_set():
    store = SessionStore(10, 10)
    sid = store.create("ip:1", None)
    first = Session().extended([{"role": "user", "text": "1"}], [None], max_turns=50)
    assert store.commit(sid, 0, first)
    seen = store.get(sid)  # two requests read version 1 ...
    assert store.commit(sid, seen.version, seen.extended([{"role": "user", "text": "2"}], [None], 50))
    assert store.commit(sid, seen.version, seen.extended([{"role": "user", "text": "3"}], [None], 50)) is False
    assert [t["text"] for t in store.get(sid).turns] == ["1", "2"]  # ... only the first commit lands
    assert store.delete(sid) and not store.delete(sid)


def test_session_keeps_most_recent_turns():
    s = Session().extended([{"role": "user", "text": str(i)} for i in range(5)], [None] * 5, max_turns=3)
    assert [t["text"] for t in s.turns] == ["2", "3", "4"] and len(s.emotions) == 3


def test_serve_config_rejects_bad_deployment_options():
    with pytest.raises(ConfigError, match="serve.deployments.Generator: unknown option"):
        load_config("demo", {"serve.deployments": {"Generator": {"replicas": 2}}})
    with pytest.raises(ConfigError, match="unknown deployment"):
        load_config("demo", {"serve.deployments": {"LLM": {"num_replicas": 1}}})
    cfg = load_config("demo", {"serve.deployments": {"Generator": {"num_replicas": 2}}})
    assert cfg.serve.deployment_options("Generator") == {"num_replicas": 2}
    assert "ray_actor_options" in cfg.serve.deployment_options("Recommender")  # defaults kept for the others
