"""The Ray Data actor that labels a batch of user turns through an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .client import ChatClient
from .data import SHARD_SCHEMA
from .prompts import build_messages, parse_answer


class LLMLabeler:
    """Ray Data actor: label one batch of turns, write it as one shard, return a small summary."""

    def __init__(self, base_url: str, model: str, out_dir: str, client_kwargs: dict):
        self.client = ChatClient(base_url, model, **client_kwargs)
        self.model, self.out_dir = model, Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        n = len(batch["turn_id"])
        msgs = [
            build_messages(str(batch["utterance"][i]), [tuple(h) for h in json.loads(batch["history"][i])])
            for i in range(n)
        ]
        rows = []
        for i, c in enumerate(self.client.complete_many(msgs)):
            p = parse_answer(c.text) if not c.error else None
            rows.append(
                {
                    "turn_id": str(batch["turn_id"][i]),
                    "conversation_id": str(batch["conversation_id"][i]),
                    "split": str(batch["split"][i]),
                    "turn_index": int(batch["turn_index"][i]),
                    "utterance": str(batch["utterance"][i]),
                    "answer": c.text,
                    "status": "error" if c.error else p.status,
                    "raw": p.raw if p else [],
                    "labels": p.labels if p else [],
                    "unmapped": p.unmapped if p else [],
                    "reason": p.reason if p else "",
                    "error": c.error,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "attempts": c.attempts,
                    "seconds": c.seconds,
                    "model": self.model,
                }
            )
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.out_dir / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), tmp)
        os.replace(tmp, self.out_dir / name)  # atomic: a shard is complete or absent
        return {"turn_id": [r["turn_id"] for r in rows], "status": [r["status"] for r in rows]}
