"""A small OpenAI-compatible chat client for labelling: bounded concurrency, retries with backoff on
429 / 5xx / timeouts / dropped connections (tenacity), per-request error capture, token counts and a cost estimate.

The API key is read from the environment (OPENAI_API_KEY, or the project's own token variable for its own
endpoint); it is never logged or written anywhere. Error text from the server is stored per row, so it goes through
`redact` first: servers echo keys back ("Incorrect API key provided: sk-..."), and an error message may quote a
request header.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

LOCAL_KEY = "sk-local"  # the project's own server ignores the key when it has no token; openai's client needs one
REDACTED = "[redacted]"
# Credentials that look like one wherever they appear: bearer tokens, OpenAI-style keys, key=value pairs.
SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"),
    re.compile(r"(?i)\b((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"),
)
SECRET_ENV = re.compile(r"(?i)(_API_KEY|TOKEN|_SECRET|PASSWORD)$")


def redact(text: str) -> str:
    """`text` without credentials: the value of every environment variable named like a secret (`*_API_KEY`,
    `*TOKEN`, `*_SECRET`, `*PASSWORD`; each comma-separated part of it), bearer tokens, `sk-...` keys and
    `api_key=...`-style pairs become `[redacted]`."""
    values = set()
    for name, value in os.environ.items():
        if SECRET_ENV.search(name):
            values.update(v.strip() for v in [value, *value.split(",")] if len(v.strip()) >= 6)
    for value in sorted(values, key=len, reverse=True):  # longest first: a value may contain another
        text = text.replace(value, REDACTED)
    text = SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = SECRET_PATTERNS[1].sub(REDACTED, text)
    return SECRET_PATTERNS[2].sub(lambda m: m.group(1) + REDACTED, text)


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
        api_key_env: str = "OPENAI_API_KEY",
    ):
        """`api_key_env`: the environment variable holding the key (its first comma-separated part is used)."""
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff = (backoff_initial_s, backoff_max_s)
        key = os.environ.get(api_key_env, "").split(",")[0].strip()
        # Retries are ours (tenacity), so the SDK's own are off.
        self.client = openai.OpenAI(base_url=base_url, api_key=key or LOCAL_KEY, timeout=timeout_s, max_retries=0)

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
    """One line for the row's `error` field: the exception's type, HTTP status and message, credentials redacted
    (before cutting, so that a cut cannot leave part of a key)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {redact(str(exc))[:300]}"


def estimate_cost(
    prompt_tokens: int, completion_tokens: int, price_prompt_per_1k: float, price_completion_per_1k: float
) -> float:
    """USD at the configured prices."""
    return round(prompt_tokens / 1000 * price_prompt_per_1k + completion_tokens / 1000 * price_completion_per_1k, 6)
