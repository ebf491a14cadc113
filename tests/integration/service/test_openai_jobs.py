"""OpenAI's fine-tuning jobs API with the official `openai` client against a live server (one per module): upload a
file, create a job on the tiny model, watch it succeed, read its events and checkpoints, chat with the model it made;
a DPO job and a reinforcement job with a string_check grader; pause / resume and cancel; every refusal a 400 naming
the field; the alpha grader endpoints."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures.live_server import live_server
from tests.fixtures.polling import until
from tests.integration.service.conftest import service_settings

FINISHED = {"succeeded", "failed", "cancelled"}
EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}
QA = [("Who are you?", "I am Forge."), ("Capital of France?", "Paris."), ("Name a number.", "7 8 9"),
      ("What is the code word?", "Paris.")]
FAST = {"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 50}  # 50 × 1e-4: the tiny model moves at once


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[httpx.Client,
                                                                                              openai.OpenAI]]:
    home = tmp_path_factory.mktemp("openai-jobs")
    with live_server(service_settings(home, tiny_model_dir, f"sqlite:///{home}/tf.db")) as (url, _):
        key = os.environ.get("TUNEFORGE_API_KEY")
        api = httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"} if key else {})
        registered = api.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)})
        assert registered.status_code == 201, registered.text
        yield api, openai.OpenAI(base_url=f"{url}/v1", api_key=key or "unused", max_retries=0, timeout=120)


def _upload(client: openai.OpenAI, rows: list[dict[str, Any]]) -> str:
    data = ("\n".join(json.dumps(row) for row in rows) + "\n").encode()
    uploaded = client.files.create(file=("data.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert uploaded.status == "processed", uploaded.status_details
    return uploaded.id


def _chat_rows(count: int = 8) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in (QA * count)[:count]]



def _until(check: Callable[[], Any], what: str, timeout: float = 300) -> Any:
    return until(check, what, timeout)


def _finished(client: openai.OpenAI, job_id: str) -> Any:
    def check() -> Any:
        job = client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in FINISHED else None
    return _until(check, f"job {job_id} finished")


def _task(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """The tuneforge task under a job (it is named after the job)."""
    items = api.get("/finetuning/getTaskList", params={"name": job_id}).json()["items"]
    assert len(items) == 1, items
    return dict(items[0])


def _model_names(api: httpx.Client) -> set[str]:
    return {m["name"] for m in api.get("/models/getModelList").json()["items"]}


def test_a_supervised_job_trains_reports_and_serves_its_model(server):
    api, client = server
    training, validation = _upload(client, _chat_rows()), _upload(client, _chat_rows(4))
    created = client.fine_tuning.jobs.create(model="tiny", training_file=training, validation_file=validation,
                                             suffix="qa", seed=7, metadata={"team": "search"}, hyperparameters=FAST)
    assert created.id.startswith("ftjob-") and created.status in ("queued", "running")
    assert created.hyperparameters.n_epochs == 1 and created.method.type == "supervised"

    job = _finished(client, created.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny:{job.organization_id}:qa:{created.id.removeprefix('ftjob-')[:8]}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert job.user_provided_suffix == "qa" and job.seed == 7 and job.metadata == {"team": "search"}

    events = client.fine_tuning.jobs.list_events(created.id, limit=100).data
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)  # newest first
    metrics = [e.data for e in events if e.type == "metrics"]
    losses = [m["train_loss"] for m in metrics]
    assert len(losses) == 4 and all(isinstance(loss, float) for loss in losses)  # 8 examples, 2 a step
    assert metrics[0]["step"] == metrics[0]["total_steps"] == 4
    assert isinstance(metrics[0]["valid_loss"], float)  # the validation file, scored at the epoch's end
    messages = [e.message for e in events if e.type == "message"]
    assert messages[0] == "The job has successfully completed" and messages[-1].startswith("Created fine-tuning job")
    first_page = client.fine_tuning.jobs.list_events(created.id, limit=2)
    assert first_page.has_more and len(first_page.data) == 2
    second_page = client.fine_tuning.jobs.list_events(created.id, limit=2, after=first_page.data[-1].id)
    assert second_page.data[0].id == events[2].id

    checkpoints = client.fine_tuning.jobs.checkpoints.list(created.id).data
    assert [c.step_number for c in checkpoints] == [4] and checkpoints[0].metrics.train_loss == losses[0]
    assert checkpoints[0].metrics.full_valid_loss == metrics[0]["valid_loss"]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-4"
    assert {job.fine_tuned_model, checkpoints[0].fine_tuned_model_checkpoint} <= _model_names(api)

    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "search"})] == [created.id]
    assert list(client.fine_tuning.jobs.list(metadata={"team": "other"})) == []

    answer = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user",
                                            "content": "Who are you?"}], max_tokens=4, temperature=0)
    assert answer.choices[0].message.content is not None and answer.usage.completion_tokens > 0

    # A fine-tuned model trains further (its adapter continues), named after the first base as OpenAI does.
    further = client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=training, hyperparameters=FAST)
    again = _finished(client, further.id)
    assert again.status == "succeeded", again.error
    assert again.fine_tuned_model.startswith(f"ft:tiny:{job.organization_id}::") and again.model == job.fine_tuned_model


def test_a_dpo_job_and_a_reinforcement_job_succeed_and_publish_at_their_end(server):
    api, client = server
    pairs = _upload(client, [{"input": {"messages": [{"role": "user", "content": q}]},
                              "preferred_output": [{"role": "assistant", "content": a}],
                              "non_preferred_output": [{"role": "assistant", "content": "No idea."}]} for q, a in QA])
    prompts = _upload(client, [{"messages": [{"role": "user", "content": f"What is {i} + 1?"}], "answer": str(i + 1)}
                               for i in range(4)])
    dpo = client.fine_tuning.jobs.create(model="tiny", training_file=pairs, method={
        "type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 2}}})
    rl = client.fine_tuning.jobs.create(model="tiny", training_file=prompts, method={
        "type": "reinforcement", "reinforcement": {"grader": EXACT, "hyperparameters": {
            "n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.5}}})
    assert dpo.method.dpo.hyperparameters.beta == 0.1  # "auto": TRL's default
    assert rl.method.reinforcement.hyperparameters.eval_samples == 2  # 4 answers a prompt × 0.5

    # The task's end alone publishes the model: it is registered before anyone reads the job again.
    _until(lambda: _task(api, dpo.id)["status"] in ("completed", "failed"), "the DPO task ended")
    _until(lambda: any(name.startswith("ft:tiny:") and name.endswith(dpo.id[6:14]) for name in _model_names(api)),
           "the DPO model registered while nobody read the job")
    for created in (dpo, rl):
        job = _finished(client, created.id)
        assert job.status == "succeeded", job.error
        metrics = [e.data for e in client.fine_tuning.jobs.list_events(created.id).data if e.type == "metrics"]
        assert [m["step"] for m in metrics] == [2, 1]
    reinforcement = [e.data for e in client.fine_tuning.jobs.list_events(rl.id).data if e.type == "metrics"]
    assert all(0.0 <= m["train_reward_mean"] <= 1.0 for m in reinforcement)


def test_pause_resume_and_cancel(server):
    api, client = server
    long_file = _upload(client, _chat_rows(1000))
    slow = {"n_epochs": 3, "batch_size": 1}  # 3,000 steps: far longer than the test lets it run on any machine
    cancelled = client.fine_tuning.jobs.cancel(
        client.fine_tuning.jobs.create(model="tiny", training_file=long_file, hyperparameters=slow).id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    paused_job = client.fine_tuning.jobs.create(model="tiny", training_file=long_file, hyperparameters=slow)

    def step_after(job_id: str, after: int) -> int | None:
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id).data if e.type == "metrics"]
        return max(steps) if steps and max(steps) > after else None

    _until(lambda: step_after(paused_job.id, 0), "the job logged a step")
    client.fine_tuning.jobs.pause(paused_job.id)
    paused = _until(lambda: (job := client.fine_tuning.jobs.retrieve(paused_job.id)).status == "paused" and job,
                    "the job paused")
    saved = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(paused_job.id).data]
    assert len(saved) == 1 and saved[0] >= 1  # the pause saved where it stopped
    assert paused.fine_tuned_model is None
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.pause(cancelled.id)

    assert client.fine_tuning.jobs.resume(paused_job.id).status in ("queued", "running")
    _until(lambda: step_after(paused_job.id, saved[0]), "the resumed job trained past its checkpoint")
    # Every page, not the newest 100: a busy machine's resumed job may have logged more than one page.
    steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(paused_job.id, limit=100)
             if e.type == "metrics"]
    assert sorted(steps) == list(range(1, max(steps) + 1))  # continued from the checkpoint: no step twice
    assert client.fine_tuning.jobs.cancel(paused_job.id).status == "cancelled"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(paused_job.id, limit=100)]
    assert {"Fine-tuning job resumed", "Fine-tuning job cancelled"} <= set(messages)
    assert any(m.startswith("Fine-tuning job paused at step") for m in messages)
    _until(lambda: _task(api, cancelled.id)["status"] == "stopped", "the cancelled job's task stopped")
    assert client.fine_tuning.jobs.retrieve(cancelled.id).status == "cancelled"


def _refused(call: Callable[[], Any]) -> Any:
    with pytest.raises(openai.BadRequestError) as refused:
        call()
    return refused.value.body


@pytest.mark.parametrize(("change", "param"), [
    ({"suffix": "x" * 65}, "suffix"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata"),
    ({"seed": -1}, "seed"),
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 257}}}},
     "method.supervised.hyperparameters.batch_size"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}}, "method.dpo.hyperparameters.beta"),
    ({"method": {"type": "dpo"}}, "training_file"),  # a chat file cannot train DPO
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
      "hyperparameters": {"n_epochs": 2}}, "hyperparameters"),  # the deprecated form and the new one disagree
    ({"method": {"type": "supervised", "dpo": {}}}, "method.dpo"),
    ({"model": "no-such-model"}, "model"),
    ({"training_file": "file-000000000000000000000000"}, "training_file"),
    ({"integrations": [{"type": "wandb", "wandb": {"project": "elsewhere"}}]}, "integrations[0].wandb.project"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_field(server, change, param):
    _, client = server
    request = {"model": "tiny", "training_file": _upload(client, _chat_rows(2))} | change
    assert _refused(lambda: client.fine_tuning.jobs.create(**request))["param"] == param


@pytest.mark.parametrize(("hyperparameters", "param"), [
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"eval_samples": 7}, "eval_samples"),
    ({"eval_interval": 5}, "eval_interval"),  # no validation file: nothing to evaluate
])
def test_reinforcement_settings_tuneforge_lacks_are_refused(server, hyperparameters, param):
    _, client = server
    prompts = _upload(client, [{"messages": [{"role": "user", "content": "1 + 1?"}], "answer": "2"}])
    method = {"type": "reinforcement", "reinforcement": {"grader": EXACT, "hyperparameters": hyperparameters}}
    body = _refused(lambda: client.fine_tuning.jobs.create(model="tiny", training_file=prompts, method=method))
    assert body["param"] == f"method.reinforcement.hyperparameters.{param}"
    no_grader = _refused(lambda: client.fine_tuning.jobs.create(model="tiny", training_file=prompts, method={
        "type": "reinforcement", "reinforcement": {"grader": {**EXACT, "operation": "sort of"}}}))
    assert no_grader["param"].startswith("method.reinforcement.grader")


def test_an_unknown_job_is_a_404_in_openais_shape(server):
    _, client = server
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.retrieve("ftjob-nosuchjob")
    assert missing.value.body["param"] == "fine_tuning_job_id" and missing.value.body["type"]


def test_the_alpha_grader_endpoints_run_and_validate(server):
    _, client = server
    run = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="4", item={"answer": "4"})
    assert run.reward == 1.0 and run.metadata.name == "exact" and run.metadata.type == "string_check"
    assert not run.metadata.errors.other_error
    missing = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="4", item={})
    assert missing.reward == 0.0 and missing.metadata.errors.invalid_variable_error
    assert client.fine_tuning.alpha.graders.validate(grader=EXACT).grader.name == "exact"
    body = _refused(lambda: client.fine_tuning.alpha.graders.validate(grader={**EXACT, "operation": "sort of"}))
    assert body["param"] == "grader.operation"
