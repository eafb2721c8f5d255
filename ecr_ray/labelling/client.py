"""A small OpenAI-compatible chat client for labelling: bounded concurrency, retries with backoff on
429 / 5xx / timeouts / dropped connections (tenacity), per-request error capture, token counts and a cost estimate.

The API key is read from OPENAI_API_KEY only; it is never logged or written anywhere.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

LOCAL_KEY = "sk-local"  # the project's own server ignores the key; openai's client insists on one


def retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth another try; 4xx are not."""
    if isinstance(exc, (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


@dataclass
class Completion:
    """One request's outcome; `error` is set (and `text` empty) when it failed for good."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    error: str = ""
    seconds: float = 0.0


class ChatClient:
    """Send many chat requests to one endpoint, at most `concurrency` at a time."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        max_tokens: int = 64,
        temperature: float = 0.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ):
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff = (backoff_initial_s, backoff_max_s)
        # Retries are ours (tenacity), so the SDK's own are off.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or LOCAL_KEY, timeout=timeout_s, max_retries=0
        )

    def complete(self, messages: list[dict]) -> Completion:
        t0, out = time.perf_counter(), Completion()
        first, cap = self.backoff
        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential_jitter(multiplier=first, max=cap, jitter=first),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    out.attempts = attempt.retry_state.attempt_number
                    resp = self.client.chat.completions.create(
                        model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=self.temperature
                    )
            out.text = resp.choices[0].message.content or ""
            if resp.usage is not None:
                out.prompt_tokens, out.completion_tokens = resp.usage.prompt_tokens, resp.usage.completion_tokens
        except RetryError as e:
            out.error = _describe(e.last_attempt.exception())
        except Exception as e:  # a non-retryable error is recorded for this row, never raised past the batch
            out.error = _describe(e)
        out.seconds = time.perf_counter() - t0
        return out

    def complete_many(self, batch: list[list[dict]]) -> list[Completion]:
        """Requests in order; at most `concurrency` in flight."""
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(len(batch), 1))) as pool:
            return list(pool.map(self.complete, batch))


def _describe(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:300]}"


def estimate_cost(
    prompt_tokens: int, completion_tokens: int, price_prompt_per_1k: float, price_completion_per_1k: float
) -> float:
    """USD at the configured prices."""
    return round(prompt_tokens / 1000 * price_prompt_per_1k + completion_tokens / 1000 * price_completion_per_1k, 6)
