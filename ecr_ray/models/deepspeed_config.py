"""The DeepSpeed config both training loops hand to `deepspeed.initialize`: the user's dict from the recipe, with
batch sizes derived from ours and the defaults that keep a DeepSpeed run equivalent to the plain PyTorch loop."""

import json
from typing import Any


def deepspeed_config(user: dict[str, Any], micro_batch: int, world: int) -> dict[str, Any]:
    ds = json.loads(json.dumps(user))  # a deep copy; the recipe's dict stays as written
    ds.setdefault("train_micro_batch_size_per_gpu", micro_batch)
    ds.setdefault("gradient_accumulation_steps", 1)
    ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    ds.setdefault("gradient_clipping", 1.0)  # the plain loops clip the gradient norm at 1.0 too
    ds.setdefault("zero_allow_untested_optimizer", True)  # our torch AdamW; ZeRO shards its state fine
    ds.setdefault("steps_per_print", 10 ** 9)
    return ds
