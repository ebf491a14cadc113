"""`tuneforge chat --model NAME` for a model registered on a tuneforge server: its files are loaded here when this
machine has them, else the conversation goes through a running deployment of it (the server's /v1 gateway)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.cli.remote import (
    ApiClient,
    RemoteError,
    ServerUnavailable,
    auth_headers,
    server_url,
    uses_proxy_settings,
)


@dataclass
class RegisteredModel:
    name: str
    base: str  # what to load: the model folder (full / merged) or the base model
    adapter: str | None
    deployment: str | None  # a running deployment's name, when there is one
    server: str

    @property
    def files_here(self) -> bool:
        """Every path the model needs exists on this machine (hub ids and 'bundled' count as present)."""
        paths = [p for p in (self.base, self.adapter) if p and (p.startswith(("/", "~", ".")))]
        return all(Path(p).expanduser().exists() for p in paths)


def find_registered(name: str, server: str | None) -> RegisteredModel | None:
    """The registered model of that exact name, or None (no server, or no such name: then NAME is a path/hub id)."""
    if name == "bundled" or Path(name).expanduser().exists():
        return None
    url = server_url(server)
    client = ApiClient(url, timeout=5)
    try:
        items = client.get("/models/getModelList", name=name)["items"]
        match = next((m for m in items if m["name"] == name), None)
        if match is None:
            return None
        detail = client.get("/models/getModel", id=match["id"])
        deployments = client.get("/deployments/getDeploymentList")["items"]
    except (ServerUnavailable, RemoteError):
        return None
    finally:
        client.close()
    running = next((d["name"] for d in deployments if d["modelId"] == match["id"] and d["status"] == "running"), None)
    return RegisteredModel(name, detail.get("modelPath") or detail["baseModel"], detail.get("adapterPath"), running,
                           url)


class GatewayChat:
    """The ChatModel interface (chat / stream) over the server's OpenAI-compatible gateway."""

    def __init__(self, server: str, model: str, system: str | None) -> None:
        import httpx

        self.model, self.system = model, system
        self.http = httpx.Client(base_url=server, timeout=httpx.Timeout(600, connect=5),
                                 trust_env=uses_proxy_settings(server), headers=auth_headers(server))

    def chat(self, messages: list[dict[str, str]], settings: Any) -> str:
        return "".join(self.stream(messages, settings))

    def stream(self, messages: list[dict[str, str]], settings: Any) -> Iterator[str]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        body = {"model": self.model, "messages": system + messages, "stream": True,
                "max_tokens": settings.max_new_tokens, "temperature": settings.temperature, "top_p": settings.top_p}
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                error = json.loads(response.read() or b"{}").get("error", {})
                raise RemoteError(response.status_code, str(error.get("code")), error.get("message", "error"), [])
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    yield (choice.get("delta") or {}).get("content") or ""
