"""score_model and label_model graders: the prompt the judge sees, how its reply is read, and HttpJudge against a
small local OpenAI-compatible server (including replies that are not what was asked for)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tuneforge.graders import GradeResult, HttpJudge, grade_samples
from tuneforge.graders.model_graders import parse_label, parse_score
from tuneforge.schemas.graders import LabelModelGrader, ScoreModelGrader


class ScriptedJudge:
    """A JudgeClient that answers from a list and records what it was asked."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, list[dict[str, str]], dict[str, Any]]] = []

    def complete(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
        self.calls.append((model, messages, sampling))
        return self.replies.pop(0)


SCORE = ScoreModelGrader(
    name="judge", model="judge-model", range=(0, 10),
    sampling_params={"temperature": 0, "max_completions_tokens": 32, "seed": 3},
    input=[{"role": "user", "content": "Question: {{item.question}}\nAnswer: {{sample.output_text}}"}])
LABEL = LabelModelGrader(name="label", model="judge-model", labels=["correct", "incorrect"],
                         passing_labels=["correct"],
                         input=[{"role": "system", "content": "You check answers."},
                                {"role": "user", "content": "{{sample.output_text}} vs {{item.reference_answer}}"}])


@pytest.mark.parametrize(("reply", "value"), [
    ("7", 7.0),
    ('{"result": 6.5}', 6.5),
    ('```json\n{"result": 4, "steps": []}\n```', 4.0),
    ('The answer is mostly right. {"score": "8"}', 8.0),
    ("I'd say 3 out of 10... final: 9", 9.0),  # no JSON: the last number
    ("no idea", None),
    ('{"result": "high"}', None),
    ("nan", None),
])
def test_score_replies(reply: str, value: float | None) -> None:
    assert parse_score(reply) == value


@pytest.mark.parametrize(("reply", "label"), [
    ("correct", "correct"),
    ('{"result": "incorrect"}', "incorrect"),
    ('  "Correct."  ', "correct"),
    ("It is correct", None),
    ('{"result": "maybe"}', None),
])
def test_label_replies(reply: str, label: str | None) -> None:
    assert parse_label(reply, ["correct", "incorrect"]) == label


def test_score_model_renders_the_prompt_asks_for_json_and_clamps_to_range() -> None:
    judge = ScriptedJudge('{"result": 7}', "15", "-2")
    results = grade_samples(SCORE, [{"output_text": "Paris"}] * 3, [{"question": "Capital of France?"}] * 3,
                            judge=judge)
    assert [r.score for r in results] == [7.0, 10.0, 0.0]
    assert results[1].details["unclamped_score"] == 15.0 and results[1].details["judge_reply"] == "15"
    model, messages, sampling = judge.calls[0]
    assert model == "judge-model"
    assert messages[0]["role"] == "system" and '{"result"' in messages[0]["content"] and "0 to 10" in messages[0][
        "content"]
    assert messages[1] == {"role": "user", "content": "Question: Capital of France?\nAnswer: Paris"}
    assert sampling == {"temperature": 0, "max_tokens": 32, "seed": 3}  # chat-completions names


def test_label_model_scores_passing_labels_one() -> None:
    judge = ScriptedJudge("correct", '{"result": "incorrect"}', "whatever")
    results = grade_samples(LABEL, [{"output_text": "a"}] * 3, [{"reference_answer": "a"}] * 3, judge=judge)
    assert [(r.score, r.details.get("label")) for r in results] == [(1.0, "correct"), (0.0, "incorrect"),
                                                                   (0.0, None)]
    assert results[2].reason is not None and "none of the labels" in results[2].reason
    system = judge.calls[0][1][0]
    assert system["content"].startswith("You check answers.") and "correct, incorrect" in system["content"]


def test_without_a_judge_model_graders_score_zero_with_the_reason() -> None:
    [result] = grade_samples(SCORE, [{"output_text": "x"}], [{"question": "q"}])
    assert result == GradeResult(0.0, reason=result.reason)
    assert result.reason is not None and result.reason.startswith("no judge model available")


def test_a_failing_judge_is_the_samples_reason() -> None:
    class Broken:
        def complete(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
            raise ConnectionError("judge down")

    [result] = grade_samples(SCORE, [{"output_text": "x"}], [{"question": "q"}], judge=Broken())
    assert result.score == 0.0 and result.reason == "judge failed: judge down"


class _ChatServer(BaseHTTPRequestHandler):
    """Replies by the last user message: 'score' → a good reply, 'status' → HTTP 500, 'html' → not JSON,
    'empty' → no choices, 'null' → content null."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:  # http.server names it
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatServer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        mode = body["messages"][-1]["content"]
        if mode == "status":
            self._send(500, json.dumps({"error": {"message": "model overloaded"}}).encode())
        elif mode == "html":
            self._send(200, b"<html>proxy login</html>")
        elif mode == "empty":
            self._send(200, json.dumps({"choices": []}).encode())
        elif mode == "null":
            self._send(200, json.dumps({"choices": [{"message": {"content": None}}]}).encode())
        else:
            reply = {"choices": [{"message": {"role": "assistant", "content": '{"result": 0.75}'}}]}
            self._send(200, json.dumps(reply).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def chat_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ChatServer.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_http_judge_posts_chat_completions(chat_url: str) -> None:
    grader = ScoreModelGrader(name="j", model="judge", input=[{"role": "user", "content": "{{sample.output_text}}"}],
                              sampling_params={"temperature": 0.0})
    [result] = grade_samples(grader, [{"output_text": "score"}], [{}], judge=HttpJudge(chat_url, api_key="k"))
    assert (result.score, result.reason) == (0.75, None)
    [request] = _ChatServer.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k"
    assert request["body"]["model"] == "judge" and request["body"]["temperature"] == 0.0
    assert request["body"]["stream"] is False


@pytest.mark.parametrize(("mode", "says"), [
    ("status", "HTTP 500): model overloaded"),
    ("html", "not a JSON object"),
    ("empty", "no choices[0].message.content"),
    ("null", "NoneType, not text"),
])
def test_http_judge_malformed_replies_score_zero_with_a_reason(chat_url: str, mode: str, says: str) -> None:
    grader = ScoreModelGrader(name="j", model="judge", input=[{"role": "user", "content": "{{sample.output_text}}"}])
    [result] = grade_samples(grader, [{"output_text": mode}], [{}], judge=HttpJudge(chat_url))
    assert result.score == 0.0 and result.reason is not None and says in result.reason


def test_http_judge_that_is_not_there_scores_zero_with_a_reason() -> None:
    grader = ScoreModelGrader(name="j", model="judge", input=[{"role": "user", "content": "hi"}])
    [result] = grade_samples(grader, [{"output_text": ""}], [{}], judge=HttpJudge("http://127.0.0.1:9/v1", timeout=5))
    assert result.score == 0.0 and result.reason is not None and "did not answer" in result.reason
