"""The conversation module's training data: ReDial recommender turns that name a movie, each after its dialogue
context, with every movie title in the turn replaced by `<movie>` (UniCRS's conversation task). One example per
(conversation, turn); built once per run by a Ray task into <run_dir>/conversation/examples.parquet, in the
generator's examples format (messages + target), so the generator's Train task fine-tunes on it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import Config
from ..data.linker import EntityLinker
from ..data.tables import load_dataset_kg
from ..prompts import as_dialogue, turn_line

SLOT = "<movie>"
INSTRUCTION = (
    "You are a movie recommender chatting with a user. Write your next turn in the conversation. Where you name a "
    f"movie, write {SLOT} instead of its title."
)


def conversation_messages(dialogue: list[dict], context_turns: int) -> list[dict]:
    """The prompt: the instruction, then the last `context_turns` turns ("User: ..." / "Recommender: ...")."""
    history = "\n".join(turn_line(t["role"], t["text"]) for t in dialogue[-context_turns:])
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": history}]


def with_slots(text: str, linker, items: set[int]) -> tuple[str, int]:
    """`text` with every movie it names (a linked KG item) replaced by SLOT, and how many there were."""
    spans = [m for m in linker.link(text) if m.entity_id in items]
    for m in reversed(spans):
        text = text[: m.start] + SLOT + text[m.end :]
    return text, len(spans)


def training_examples(samples: list[dict], linker, items: set[int], context_turns: int) -> list[dict]:
    """samples.parquet rows (train split) → one example per recommender turn that names at least one movie."""
    out, seen = [], set()
    for s in samples:
        turn = (s["conversation_id"], s["turn_index"])
        if turn in seen:  # a turn recommending several movies has one sample per movie
            continue
        seen.add(turn)
        target, slots = with_slots(s["response"], linker, items)
        if slots:
            out.append({"messages": conversation_messages(as_dialogue(s["context"]), context_turns), "target": target})
    return out


def build_examples(cfg: Config, out: Path) -> dict:
    """tables/samples.parquet (train split) → `out`; counts for the manifest. Run as a Ray task."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = cfg.run_path / "tables" / "samples.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the tables first (`ecr-ray data`)")
    samples = pq.read_table(path, filters=[("split", "=", "train")]).to_pylist()
    kg = load_dataset_kg(cfg)
    examples = training_examples(
        samples, EntityLinker.from_kg(kg, include_items=True), set(kg.item_set), cfg.conversation.context_turns
    )
    if not examples:
        raise ValueError(f"{path}: no train recommender turn names a KG movie")
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {"messages": [json.dumps(e["messages"]) for e in examples], "target": [e["target"] for e in examples]}
        ),
        out,
    )
    return {
        "examples": len(examples),
        "recommender_turns": len({(s["conversation_id"], s["turn_index"]) for s in samples}),
        "slots": sum(e["target"].count(SLOT) for e in examples),
    }
