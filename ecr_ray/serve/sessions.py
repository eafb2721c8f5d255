"""Multi-turn sessions, shared by every ingress replica.

A client of `/v1/recommend` may send only its new turns with a `session_id`; the service keeps the rest. With several
ingress replicas (the RayService runs two) consecutive requests of one session land on any of them, so sessions live
in one place they all reach: a Ray actor, detached and pinned to the head node, where the GCS and the Serve
controller already live. Losing an ingress replica or a worker node loses no session; losing the head loses the
cluster anyway (docs/serve.md weighs this against an external store such as Redis).

The store is bounded: at most `serve.max_sessions` sessions (the least recently used is evicted first), each
forgotten after `serve.session_ttl_s` idle. An update is a compare-and-set on the session's version, so two replicas
answering the same session at once cannot interleave its history: the later commit fails and that request is
answered again on the new history. Sessions are soft state: a client can always send the whole dialogue instead.
"""

from __future__ import annotations

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

    def extended(self, turns: list[dict], emotions: list[list[float] | None], max_turns: int) -> Session:
        """A copy with `turns` appended, the most recent `max_turns` kept."""
        return replace(self, turns=(self.turns + turns)[-max_turns:], emotions=(self.emotions + emotions)[-max_turns:])


class SessionStore:
    """Sessions bounded in number (least recently used evicted) and age (idle > ttl_s forgotten). The state of the
    shared actor (`connect`), and usable on its own."""

    def __init__(self, max_sessions: int, ttl_s: float, clock=time.monotonic):
        self.max_sessions, self.ttl_s, self.clock = max_sessions, ttl_s, clock
        self._data: OrderedDict[str, tuple[Session, float]] = OrderedDict()  # id → (session, last touched)

    def _expire(self) -> None:
        now = self.clock()
        while self._data:
            sid, (_, touched) = next(iter(self._data.items()))
            if now - touched <= self.ttl_s:
                break
            del self._data[sid]

    def get(self, sid: str) -> Session | None:
        """The session (marked recently used), or None when it never existed or expired."""
        self._expire()
        if sid not in self._data:
            return None
        session, _ = self._data[sid]
        self._data[sid] = (session, self.clock())
        self._data.move_to_end(sid)
        return session

    def commit(self, sid: str, version: int, session: Session) -> bool:
        """Store `session` if the stored one still has `version` (0: none stored); False when another commit came
        first. The stored copy gets version + 1."""
        self._expire()
        current = self._data[sid][0].version if sid in self._data else 0
        if current != version:
            return False
        self._data[sid] = (replace(session, version=version + 1), self.clock())
        self._data.move_to_end(sid)
        while len(self._data) > self.max_sessions:
            self._data.popitem(last=False)
        return True

    def delete(self, sid: str) -> bool:
        self._expire()
        return self._data.pop(sid, None) is not None

    def size(self) -> int:
        self._expire()
        return len(self._data)


def connect(name: str, max_sessions: int, ttl_s: float):
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
    return actor.remote(max_sessions, ttl_s)
