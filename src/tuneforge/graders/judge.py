"""HttpJudge: a JudgeClient over any OpenAI-compatible `/v1/chat/completions` (this platform's deployments,
vLLM, llama.cpp's server, OpenAI itself)."""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 120.0  # one judgement: a short prompt and a short answer
ERROR_TEXT_MAX = 300


class JudgeError(RuntimeError):
    """The judge gave no usable reply; the message says what happened and becomes the sample's reason."""


class HttpJudge:
    """`base_url` is the API root, as OpenAI's clients take it (e.g. `http://127.0.0.1:8000/v1`); requests go to
    `{base_url}/chat/completions`. Environment proxies are never used: prompts hold dataset rows and answers."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def complete(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
        body = {**{key: value for key, value in sampling.items() if value is not None},
                "model": model, "messages": messages, "stream": False}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        try:
            with httpx.Client(timeout=self.timeout, trust_env=False) as client:
                response = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise JudgeError(f"judge at {self.base_url} did not answer: {type(exc).__name__}: {exc}") from exc
        return reply_text(response)


def reply_text(response: httpx.Response) -> str:
    """The first choice's message text of a chat-completions response; JudgeError for anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_error:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:ERROR_TEXT_MAX]
        raise JudgeError(f"judge refused the request (HTTP {response.status_code}): {message}")
    if not isinstance(body, dict):
        raise JudgeError(f"judge reply is not a JSON object: {response.text[:ERROR_TEXT_MAX]!r}")
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeError(f"judge reply has no choices[0].message.content: {response.text[:ERROR_TEXT_MAX]!r}") from None
    if not isinstance(content, str):
        raise JudgeError(f"judge reply's message content is {type(content).__name__}, not text")
    return content
