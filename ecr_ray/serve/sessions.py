"""Multi-turn sessions, shared by every ingress replica.

A client of `/v1/recommend` may send only its new turns with a `session_id`; the service keeps the rest. With several
ingress replicas (the RayService runs two) consecutive requests of one session land on any of them, so sessions live
in one place they all reach: a Ray actor, detached and pinned to the head node, where the GCS and the Serve
controller already live. Losing an ingress replica or a worker node loses no session; losing the head loses the
cluster anyway (docs/serve.md weighs this against an external store such as Redis).

Session ids are issued by the service (`create`: 24 random URL-safe characters, `secrets.token_urlsafe`), never
chosen by clients, so an id cannot be guessed. With bearer auth on, a session is bound to the token that created it:
any other token gets "not found" for it, as for an id that never existed. Every client — a token, or without auth
an IP address — holds at most `serve.max_sessions_per_client` sessions (creating one more evicts that client's least
recently used one), so no client can evict another's sessions by creating many.

The store is bounded: at most `serve.max_sessions` sessions (the least recently used is evicted first), each
forgotten after `serve.session_ttl_s` idle. An update is a compare-and-set on the session's version, so two replicas
answering the same session at once cannot interleave its history: the later commit fails and that request is
answered again on the new history. Sessions are soft state: a client can always send the whole dialogue instead.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

NAMESPACE = "ecr-ray"


@dataclass
class Session:
    """One conversation: its turns and the emotion probabilities of its user turns (None for other turns)."""

    turns: list[dict] = field(default_factory=list)
    emotions: list[list[float] | None] = field(default_factory=list)
    version: int = 0
    """How many times it was committed: the compare-and-set key."""
    client: str = ""
    """Who created it: the hash of its bearer token, or its IP address without auth (the per-client cap)."""
    owner: str | None = None
    """The client it is bound to (auth on), or None (auth off: the random id is the only key)."""

    def extended(self, turns: list[dict], emotions: list[list[float] | None], max_turns: int) -> Session:
        """A copy with `turns` appended, the most recent `max_turns` kept."""
        return replace(self, turns=(self.turns + turns)[-max_turns:], emotions=(self.emotions + emotions)[-max_turns:])


class SessionStore:
    """Sessions bounded in number (least recently used evicted), per client and in age (idle > ttl_s forgotten).
    The state of the shared actor (`connect`), and usable on its own."""

    def __init__(self, max_sessions: int, ttl_s: float, max_per_client: int | None = None, clock=time.monotonic):
        self.max_sessions, self.ttl_s, self.clock = max_sessions, ttl_s, clock
        self.max_per_client = max_per_client or max_sessions
        self._data: OrderedDict[str, tuple[Session, float]] = OrderedDict()  # id → (session, last touched)
        self._by_client: dict[str, OrderedDict[str, None]] = {}  # client → its ids, least recently used first

    def _drop(self, sid: str) -> None:
        session, _ = self._data.pop(sid)
        ids = self._by_client[session.client]
        del ids[sid]
        if not ids:
            del self._by_client[session.client]

    def _touch(self, sid: str, session: Session) -> None:
        self._data[sid] = (session, self.clock())
        self._data.move_to_end(sid)
        self._by_client.setdefault(session.client, OrderedDict())[sid] = None
        self._by_client[session.client].move_to_end(sid)

    def _expire(self) -> None:
        now = self.clock()
        while self._data:
            sid, (_, touched) = next(iter(self._data.items()))
            if now - touched <= self.ttl_s:
                break
            self._drop(sid)

    def _visible(self, sid: str, caller: str | None) -> Session | None:
        """The session if it exists and `caller` may see it (a bound session only by its owner)."""
        self._expire()
        entry = self._data.get(sid)
        if entry is None or (entry[0].owner is not None and entry[0].owner != caller):
            return None
        return entry[0]

    def create(self, client: str, owner: str | None) -> str:
        """A new empty session for `client` (bound to `owner` when given); its id. The client's least recently used
        session makes room when it holds `max_per_client` already, the store's when it is full."""
        self._expire()
        ids = self._by_client.get(client, ())
        while len(ids) >= self.max_per_client:
            self._drop(next(iter(ids)))
            ids = self._by_client.get(client, ())
        sid = secrets.token_urlsafe(18)
        self._touch(sid, Session(client=client, owner=owner))
        while len(self._data) > self.max_sessions:
            self._drop(next(iter(self._data)))
        return sid

    def get(self, sid: str, caller: str | None = None) -> Session | None:
        """The session (marked recently used), or None when it never existed, expired or is someone else's."""
        session = self._visible(sid, caller)
        if session is not None:
            self._touch(sid, session)
        return session

    def commit(self, sid: str, version: int, session: Session, caller: str | None = None) -> bool | None:
        """Store `session` if the stored one still has `version`; False when another commit came first, None when
        the session is gone (expired, evicted, deleted) or not the caller's. The stored copy gets version + 1."""
        current = self._visible(sid, caller)
        if current is None:
            return None
        if current.version != version:
            return False
        self._touch(sid, replace(session, version=version + 1, client=current.client, owner=current.owner))
        return True

    def delete(self, sid: str, caller: str | None = None) -> bool:
        if self._visible(sid, caller) is None:
            return False
        self._drop(sid)
        return True

    def size(self) -> int:
        self._expire()
        return len(self._data)


def connect(name: str, max_sessions: int, ttl_s: float, max_per_client: int | None = None):
    """The shared store `name`: created by the first replica that asks (on the head node, no CPU reserved,
    restarted if its process dies), found by every other one."""
    import ray

    actor = ray.remote(SessionStore).options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        resources={"node:__internal_head__": 0.001},
        max_restarts=-1,
    )
    return actor.remote(max_sessions, ttl_s, max_per_client)
