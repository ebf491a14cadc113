"""A GRPO task through the API: `rewards` may name stored graders, which the server writes into the run's config
as the grader objects themselves (a grader edited later changes no run already planned); a name that is no stored
grader, and a batch that does not split into groups, are refused naming the field, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.service.conftest import task_body

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"}], "answer": str(i + 1)} for i in range(8)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def _grpo(tmp_path: Path, tiny_model_dir: Path, name: str, **args: Any) -> dict[str, Any]:
    settings = {"stage": "grpo", "num_generations": 4, "max_new_tokens": 8, "per_device_train_batch_size": 4}
    return task_body(name, tiny_model_dir, _prompts(tmp_path), **{**settings, **args})


def test_a_stored_grader_name_becomes_the_grader_in_the_task(make_client, tmp_path, tiny_model_dir):
    client = make_client(run_scheduler=False)
    assert client.post("/graders/createGrader", json={"name": "exact-answer", "grader": EXACT}).status_code == 201
    body = _grpo(tmp_path, tiny_model_dir, "grpo-stored", rewards=[{"grader": "exact-answer", "weight": 2.0}])
    created = client.post("/finetuning/createTask", json=body)
    assert created.status_code in (200, 201), created.text
    task = client.get("/finetuning/getTask", params={"id": created.json()["id"]}).json()
    assert task["trainingArgs"]["rewards"] == [{"grader": EXACT, "weight": 2.0}]


def test_an_unknown_grader_and_a_ragged_group_are_refused_naming_the_field(make_client, tmp_path, tiny_model_dir):
    client = make_client(run_scheduler=False)
    body = _grpo(tmp_path, tiny_model_dir, "grpo-bad", rewards=[{"grader": "no-such-grader"}],
                 per_device_train_batch_size=6)
    answer = client.post("/finetuning/createTask", json=body)
    assert answer.status_code == 422, answer.text
    fields = {d["field"]: d["message"] for d in answer.json()["error"]["details"]}
    assert "no stored grader is named 'no-such-grader'" in fields["trainingArgs.rewards[0].grader"]
    assert "do not split into groups of 4" in fields["trainingArgs.num_generations"]
    no_reward = client.post("/finetuning/createTask", json=_grpo(tmp_path, tiny_model_dir, "grpo-none"))
    assert no_reward.status_code == 422
    assert "needs a reward" in {d["field"]: d["message"] for d in no_reward.json()["error"]["details"]}[
        "trainingArgs.rewards"]


def test_the_consoles_comma_separated_names_are_stored_graders(make_client, tmp_path, tiny_model_dir):
    """A form's text input sends `rewards` as "a, b": each name is a stored grader of weight 1."""
    client = make_client(run_scheduler=False)
    for name in ("exact-one", "exact-two"):
        assert client.post("/graders/createGrader", json={"name": name, "grader": EXACT}).status_code == 201
    created = client.post("/finetuning/createTask",
                          json=_grpo(tmp_path, tiny_model_dir, "grpo-text", rewards="exact-one, exact-two"))
    assert created.status_code in (200, 201), created.text
    task = client.get("/finetuning/getTask", params={"id": created.json()["id"]}).json()
    assert task["trainingArgs"]["rewards"] == [{"grader": EXACT, "weight": 1.0}] * 2


def test_a_grpo_task_runs_and_shows_its_scored_answers(make_client, tmp_path, tiny_model_dir):
    """The whole path: a stored grader as the reward, the scheduler runs the worker, the stage's figures reach
    getTaskMetrics and each step's sampled answers, with their scores, reach getTaskSamples."""
    from tests.integration.service.conftest import wait_for

    client = make_client()
    assert client.post("/graders/createGrader", json={"name": "exact-answer", "grader": EXACT}).status_code == 201
    body = _grpo(tmp_path, tiny_model_dir, "grpo-run", rewards="exact-answer", max_steps=2, save_steps=100)
    created = client.post("/finetuning/createTask", json=body)
    assert created.status_code in (200, 201), created.text
    task = wait_for(client, created.json()["id"], {"completed", "failed"})
    assert task["status"] == "completed", task.get("errorMessage")
    metrics = client.get("/finetuning/getTaskMetrics", params={"id": task["id"]}).json()
    assert [step for step, _ in metrics["stage"]["reward"]] == [1, 2]
    samples = client.get("/finetuning/getTaskSamples", params={"id": task["id"]}).json()
    assert samples["steps"] == [1, 2] and samples["step"] == 2 and len(samples["samples"]) == 4
    first = client.get("/finetuning/getTaskSamples", params={"id": task["id"], "step": 1}).json()
    for sample in first["samples"]:  # one prompt, four answers, each scored by the stored grader
        assert set(sample["scores"]) == {"exact"} and sample["scores"]["exact"] in (0.0, 1.0)
        assert sample["reward"] == sample["scores"]["exact"] and "What is" in sample["prompt"]
