"""The serving process end to end on a tiny random Llama: the official openai client, streaming, 8 concurrent
greedy streams equal to one-at-a-time answers, and the errors a client sees."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.fixtures.polling import until
from tuneforge.engine.generate import GenerationSettings, load_chat_model
from tuneforge.serving.__main__ import parse_args, served_name
from tuneforge.serving.app import ServedModel, create_app

NAME = "tiny-forge"
QUESTIONS = [f"Question {i}: " + "what is the capital of France? " * (i % 4 + 1) for i in range(8)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chat_model(tiny_model_dir: Path) -> Any:
    return load_chat_model(str(tiny_model_dir), template="chatml")


@pytest.fixture(scope="module")
def base_url(chat_model: Any) -> Iterator[str]:
    port = _free_port()
    app = create_app(NAME, lambda: ServedModel.start(NAME, chat_model, max_batch=8))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=30).status_code == 200
        except httpx.TransportError:  # not listening yet, or too busy to answer in time
            return False

    until(healthy, "the serving process answering /health", every=0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=300)  # a hang guard only


def _greedy(chat_model: Any, messages: list[dict[str, str]], max_tokens: int) -> str:
    """What the engine's own chat (transformers' generate, one request) answers."""
    return chat_model.chat(messages, GenerationSettings(max_new_tokens=max_tokens))


def test_openai_client_non_stream_and_stream_match_the_engine(client: openai.OpenAI, chat_model: Any) -> None:
    messages = [
        {"role": "system", "content": "You are Forge."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I am Forge."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    expected = _greedy(chat_model, messages, 24)

    reply = client.chat.completions.create(model=NAME, messages=messages, temperature=0, max_tokens=24)
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.prompt_tokens == len(chat_model.prompt_ids(messages))
    assert reply.usage.completion_tokens <= 24
    assert reply.choices[0].finish_reason in ("stop", "length")

    chunks = list(client.chat.completions.create(model=NAME, messages=messages, temperature=0,
                                                 max_completion_tokens=24, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reply.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    assert [m.id for m in client.models.list().data] == [NAME]


def test_eight_concurrent_streams_give_the_sequential_greedy_answers(client: openai.OpenAI, base_url: str) -> None:
    def ask(question: str) -> str:
        stream = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": question}],
                                                temperature=0, max_tokens=32, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    sequential = [ask(q) for q in QUESTIONS]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(ask, QUESTIONS))
    assert concurrent == sequential
    assert len(set(sequential)) > 1  # the prompts really differ
    assert httpx.get(f"{base_url}/health").json()["largest_batch"] > 1  # decoded together, not one by one


def test_stop_strings_cut_the_answer_and_seeds_repeat_samples(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Write a haiku about the sea."}]
    full = client.chat.completions.create(model=NAME, messages=messages, temperature=0, max_tokens=24)
    text = full.choices[0].message.content
    stop = text[6:9]
    cut = client.chat.completions.create(model=NAME, messages=messages, temperature=0, max_tokens=24, stop=[stop])
    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"

    def sample(seed: int) -> str:
        return client.chat.completions.create(model=NAME, messages=messages, temperature=1.0, top_p=0.9, seed=seed,
                                              max_tokens=16).choices[0].message.content

    assert sample(7) == sample(7)


def test_over_long_prompt_is_a_400_with_the_numbers(client: openai.OpenAI, chat_model: Any) -> None:
    long_text = "the capital of France is Paris. " * 200
    tokens = len(chat_model.prompt_ids([{"role": "user", "content": long_text}]))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": long_text}])
    message = caught.value.body["message"]
    assert str(tokens) in message and "512" in message and "max_position_embeddings" in message
    assert caught.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=600)
    assert caught.value.body["param"] == "max_tokens" and "512" in caught.value.body["message"]


def test_unknown_model_is_a_404_naming_the_served_one(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4o" in caught.value.body["message"] and NAME in caught.value.body["message"]
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(("field", "value", "param"), [
    ("n", 2, "n"), ("temperature", 5, "temperature"), ("top_p", 0, "top_p"), ("max_tokens", 0, "max_tokens"),
    ("messages", [], "messages"), ("messages", [{"role": "wizard", "content": "x"}], "messages.0.role"),
])
def test_bad_fields_are_400_naming_the_field(base_url: str, field: str, value: Any, param: str) -> None:
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], field: value}
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_health_is_503_while_loading_and_says_why_a_load_failed() -> None:
    release = threading.Event()

    def load() -> ServedModel:
        release.wait(300)  # still loading for as long as the test looks; the timeout only guards against a hang
        raise RuntimeError("no weights in /nowhere")

    with TestClient(create_app("m", load)) as http:
        try:
            loading = http.get("/health")
            assert loading.status_code == 503 and loading.json()["status"] == "loading"
            busy = http.post("/v1/chat/completions",
                             json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "model_loading"
        finally:
            release.set()  # the load fails now (or, after a failed assertion, leaves no thread waiting)
        until(lambda: http.get("/health").json()["status"] == "failed", "/health saying the load failed", every=0.05)
        failed = http.get("/health")
        assert failed.status_code == 503 and "no weights in /nowhere" in failed.json()["error"]


def test_command_line_names_the_model() -> None:
    args = parse_args(["--model", "bundled", "--adapter", "/runs/identity/output", "--port", "9000"])
    assert (served_name(args), args.port, args.max_batch) == ("output", 9000, 8)
    assert served_name(parse_args(["--model", "bundled", "--name", "forge"])) == "forge"


def test_an_adapter_is_served_without_merging(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    chat = load_chat_model(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), template="chatml")
    messages = [{"role": "user", "content": "Who are you?"}]
    with TestClient(create_app("tuned", lambda: ServedModel.start("tuned", chat))) as http:
        def loaded() -> bool:
            health = http.get("/health")
            assert health.json().get("status") != "failed", health.json()  # a failed load fails now, saying why
            return health.status_code == 200

        until(loaded, "the adapter's model loading", every=0.05)
        reply = http.post("/v1/chat/completions", json={"model": "tuned", "messages": messages, "temperature": 0,
                                                        "max_tokens": 16})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == _greedy(chat, messages, 16)
