"""`ConversationPredictor`: a dialogue + the recommender's items → the recommendation response u_r, its `<movie>`
slots filled with the items in rank order (Serve's Generator replica, the evaluation and the LLM scorer benchmark)."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Config, ConversationConfig
from ..generator.model import ADAPTER_DIR
from ..hub import device, dtype, load_chat_model
from ..prompts import render_prompt
from ..reply import GENERATED, TEMPLATE
from .data import SLOT, conversation_messages

_PLACEHOLDER = re.compile(r"<[A-Za-z_ ]{1,24}>|\[(?:ITEM|MOVIE|movie)\]")  # what a model writes for a title


def fill_slots(text: str, names: list[str]) -> str:
    """The k-th `<movie>` ← the k-th name; slots beyond the names repeat the last one."""
    parts = text.split(SLOT)
    out = parts[0]
    for k, rest in enumerate(parts[1:]):
        out += names[min(k, len(names) - 1)] + rest
    return " ".join(out.split())


class ConversationPredictor:
    def __init__(self, tokenizer, model, ccfg: ConversationConfig):
        self.tok, self.model, self.c = tokenizer, model, ccfg
        self.tok.padding_side = "left"

    @staticmethod
    def adapter(cfg: Config) -> Path:
        return cfg.run_path / "conversation" / ADAPTER_DIR

    @classmethod
    def load(cls, cfg: Config) -> ConversationPredictor | None:
        """The run's trained module (base model + merged adapter), or None when it has none (Serve then answers
        with its templates and says so)."""
        from peft import PeftModel

        path = cls.adapter(cfg)
        if not (path / "adapter_config.json").exists():
            return None
        c = cfg.conversation
        on = device(c.device)
        tok, model = load_chat_model(c.base_model, dtype(c.dtype, on), on, cfg.offline)
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        model.eval()
        return cls(tok, model, c)

    def generate(self, dialogues: list[list[dict]]) -> list[str]:
        """The next recommender turn of each dialogue, with `<movie>` slots (first line of the decoded text)."""
        return [text for text, _ in self._generate(dialogues)]

    def _generate(self, dialogues: list[list[dict]]) -> list[tuple[str, dict]]:
        """`generate`, each turn with the tokens its prompt and its decoding took (OpenAI's usage counts)."""
        import torch

        prompts = [render_prompt(self.tok, conversation_messages(d, self.c.context_turns)) for d in dialogues]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        gen = {
            "max_new_tokens": self.c.max_new_tokens,
            "do_sample": self.c.do_sample,
            "repetition_penalty": self.c.repetition_penalty,
            "pad_token_id": self.tok.pad_token_id,
        }
        if self.c.do_sample:
            gen.update(temperature=self.c.temperature, top_p=self.c.top_p)
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen)
        new = out[:, enc["input_ids"].shape[1] :]
        texts = self.tok.batch_decode(new, skip_special_tokens=True)
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        new_tokens = (new != self.tok.pad_token_id).sum(dim=1).tolist()
        # the first line; any placeholder the model writes ("<film_name>", "[ITEM]") is a slot
        return [
            (
                _PLACEHOLDER.sub(SLOT, (t.strip().splitlines() or [""])[0].strip()),
                {"prompt_tokens": p, "completion_tokens": n},
            )
            for t, p, n in zip(texts, prompt_tokens, new_tokens)
        ]

    def respond_batch(self, dialogues: list[list[dict]], names: list[list[str]], fallbacks: list[str]) -> list[dict]:
        """u_r per dialogue: the generated turn with its slots filled by `names` (the recommender's items, best
        first), or `fallbacks[i]` (Serve's template) when the turn has no slot, i.e. recommends nothing. `usage`:
        the tokens the module read and wrote for it."""
        out = []
        for (text, usage), items, fallback in zip(self._generate(dialogues), names, fallbacks):
            if SLOT in text and items:
                row = {"text": _tidy(fill_slots(text, items)), "source": GENERATED, "generated": text}
            else:
                row = {"text": fallback, "source": TEMPLATE, "generated": text}
            out.append({**row, "usage": usage})
        return out


def _tidy(text: str) -> str:
    """Space before punctuation left by slot filling ("<movie> ?" → "Title (2001)?")."""
    return re.sub(r"\s+([?!.,])", r"\1", text)
