"""A stage's own figures (rewards/margins, kl, reward, …) and its sampled completions reach the API from a run
directory written by hand: getTaskMetrics returns the figures by name, train and eval; getTaskSamples returns one
step's completions with their scores. Everything in a run directory is hostile input: non-finite numbers, odd names,
torn, foreign and over-long lines are dropped, never a server error, and what is read stays bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tuneforge.rundir import RunDir
from tuneforge.service.runtime.ingest import MAX_STAGE_METRIC_NAME, MAX_STAGE_METRICS, ingest_events
from tuneforge.service.views import MAX_SAMPLE_TEXT, MAX_STEP_SAMPLES
from tuneforge.store import MetricPoint, Task


def add_task(platform: Any, stage: str = "grpo", name: str = "rl-task") -> tuple[int, RunDir]:
    """A running task row with an empty run directory (no worker: the test writes what one would)."""
    run_dir = RunDir(platform.settings.runs_path / name)
    run_dir.path.mkdir(parents=True)
    with platform.db.session() as session:
        task = Task(name=name, base_model="bundled", dataset="prompts", output_path=str(run_dir.path / "output"),
                    stage=stage, finetuning_type="lora", training_args={"stage": stage}, status="running",
                    run_dir=str(run_dir.path), log_path=str(run_dir.log_file), metrics={}, created_at=time.time())
        session.add(task)
        session.flush()
        return task.id, run_dir


def write_lines(path: Path, lines: list[Any]) -> None:
    """Objects as JSON lines, strings as they are (torn or foreign lines; a lone surrogate is a byte that is not
    UTF-8)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))


def ingest(platform: Any, task_id: int) -> None:
    with platform.db.session() as session:
        ingest_events(session, session.get(Task, task_id))


def event(seq: int, kind: str, step: int, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "time": time.time(), "step": step, **fields}


@pytest.fixture()
def client(make_client):
    return make_client(run_scheduler=False)


def test_the_stage_figures_of_train_and_eval_events_reach_get_task_metrics(client):
    platform = client.app.state.platform
    task_id, run_dir = add_task(platform, "dpo")
    write_lines(run_dir.events_file, [
        {"seq": 1, "type": "started", "time": time.time(), "total_steps": 4},
        event(2, "progress", 1, loss=0.69, metrics={"rewards/chosen": 0.01, "rewards/margins": 0.02}),
        event(3, "progress", 2, loss=0.6, metrics={"rewards/chosen": 0.05, "rewards/margins": 0.2,
                                                   "rewards/accuracies": 1}),
        event(4, "eval", 2, eval_loss=0.62, metrics={"eval_rewards/margins": 0.15}),
        event(5, "eval", 4, eval_loss=0.5, metrics={"rewards/margins": 0.3}),  # a worker that left off the prefix
    ])
    ingest(platform, task_id)
    ingest(platform, task_id)  # twice changes nothing
    series = client.get("/finetuning/getTaskMetrics", params={"id": task_id}).json()
    assert series["stage"] == {"rewards/chosen": [[1, 0.01], [2, 0.05]], "rewards/margins": [[1, 0.02], [2, 0.2]],
                               "rewards/accuracies": [[2, 1.0]], "eval_rewards/margins": [[2, 0.15], [4, 0.3]]}
    assert series["loss"] == [[1, 0.69], [2, 0.6]] and series["evalLoss"] == [[2, 0.62], [4, 0.5]]


def test_hostile_figures_are_dropped_and_the_event_still_counts(client):
    platform = client.app.state.platform
    task_id, run_dir = add_task(platform)
    many = {f"figure_{i:03d}": float(i) for i in range(100)}
    too_long, longest = "x" * (MAX_STAGE_METRIC_NAME + 1), "y" * MAX_STAGE_METRIC_NAME
    odd = ('{"seq": 2, "type": "progress", "time": 1.0, "step": 1, "loss": 1.5, "metrics": {"nan": NaN, '
           '"inf": Infinity, "minus_inf": -Infinity, "huge": 1e999, "big_int": 1' + "0" * 400 + ', "flag": true, '
           f'"text": "0.5", "nested": {{"a": 1}}, "list": [1], "none": null, "": 1.0, "{too_long}": 1.0, '
           f'"{longest}": 2.0, "reward": 0.25, "kl": -3}}}}')
    write_lines(run_dir.events_file, [
        {"seq": 1, "type": "started", "time": time.time(), "total_steps": 3},
        odd,
        event(3, "progress", 2, loss=1.4, metrics=["reward", 1.0]),  # not an object: no figures, the loss counts
        event(4, "progress", 3, loss=1.3, metrics=many),
    ])
    ingest(platform, task_id)
    series = client.get("/finetuning/getTaskMetrics", params={"id": task_id}).json()
    assert series["loss"] == [[1, 1.5], [2, 1.4], [3, 1.3]]
    first = {name: points for name, points in series["stage"].items() if points[0][0] == 1}
    assert first == {longest: [[1, 2.0]], "reward": [[1, 0.25]], "kl": [[1, -3.0]]}
    with platform.db.session() as session:
        last = session.query(MetricPoint).filter_by(task_id=task_id, step=3).one()
        assert len(last.extra) == MAX_STAGE_METRICS and last.extra["figure_000"] == 0.0
    task = client.get("/finetuning/getTask", params={"id": task_id}).json()
    assert task["step"] == 3 and "event_problems" not in task["metrics"]


def sample(step: int, n: int, **extra: Any) -> dict[str, Any]:
    return {"step": step, "prompt": f"What is {n} + {n}? Answer with the number only.", "completion": str(2 * n),
            "reward": 1.0, "scores": {"exact_answer": 1.0, "answer_in_text": 1.0},
            "reasons": {"exact_answer": "matches"}, **extra}


def samples(client, task_id: int, **params: Any) -> dict[str, Any]:
    response = client.get("/finetuning/getTaskSamples", params={"id": task_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_samples_of_the_last_step_or_a_chosen_one_with_scores_and_reasons(client):
    platform = client.app.state.platform
    task_id, run_dir = add_task(platform)
    assert samples(client, task_id) == {"taskId": task_id, "status": "running", "step": None, "steps": [],
                                        "samples": [], "total": 0, "skipped": 0, "partial": False}
    write_lines(run_dir.completions_file, [
        sample(1, 1), sample(1, 2, reward=0.0, scores={"exact_answer": 0.0}, reasons={"exact_answer": "said 5"}),
        "{not json", '["a list"]', '{"step": "2", "prompt": "p", "completion": "c"}', "\udcff",
        sample(2, 3, reward=float("nan"), scores={"exact_answer": "1", "nan": float("inf"), "ok": 0.5},
               reasons={"exact_answer": 7, "ok": "r" * 2000}),
        sample(2, 4, prompt="p" * (MAX_SAMPLE_TEXT + 10)),
        "x" * (300 * 1024),  # over the line limit
        '{"step": 2, "prompt": "p", "completion": "c", "reward": 1' + "0" * 5000 + "}",  # no int has 5001 digits
        sample(2, 5),
    ])
    with run_dir.completions_file.open("a", encoding="utf-8") as f:
        f.write('{"step": 3, "prompt": "still being wri')  # the last line, torn: not read, not counted
    latest = samples(client, task_id)
    assert latest["step"] == 2 and latest["steps"] == [1, 2] and latest["total"] == 3
    assert latest["skipped"] == 6  # not JSON, a list, a string step, bad UTF-8, over-long, a huge integer
    first, long, last = latest["samples"]
    assert first["reward"] is None and first["scores"] == {"ok": 0.5} and first["reasons"] == {"ok": "r" * 500}
    assert long["truncated"] and len(long["prompt"]) == MAX_SAMPLE_TEXT and not first["truncated"]
    assert last["completion"] == "10" and last["scores"] == {"exact_answer": 1.0, "answer_in_text": 1.0}
    chosen = samples(client, task_id, step=1)
    assert chosen["step"] == 1 and [s["completion"] for s in chosen["samples"]] == ["2", "4"]
    assert chosen["samples"][1]["reasons"] == {"exact_answer": "said 5"} and chosen["samples"][1]["reward"] == 0.0
    empty = samples(client, task_id, step=7)
    assert empty["step"] == 7 and empty["samples"] == [] and empty["steps"] == [1, 2]


def test_samples_are_bounded_per_step_and_by_the_window_read(client, monkeypatch):
    from tuneforge.service.tasks import run_files

    platform = client.app.state.platform
    task_id, run_dir = add_task(platform)
    write_lines(run_dir.completions_file, [sample(step, n) for step in range(1, 21) for n in range(5)]
                + [sample(21, n) for n in range(MAX_STEP_SAMPLES + 36)])
    latest = samples(client, task_id)
    assert latest["step"] == 21 and latest["total"] == MAX_STEP_SAMPLES + 36
    assert len(latest["samples"]) == MAX_STEP_SAMPLES and latest["steps"] == list(range(1, 22))
    assert not latest["partial"]
    monkeypatch.setattr(run_files, "MAX_SAMPLE_STEPS", 5)
    assert samples(client, task_id)["steps"] == [17, 18, 19, 20, 21]  # the latest steps are listed
    assert samples(client, task_id, step=3)["total"] == 5  # an earlier one can still be asked for
    monkeypatch.setattr(run_files, "COMPLETIONS_WINDOW_BYTES", 20 * 1024)
    tail = samples(client, task_id)
    assert tail["partial"] and tail["step"] == 21 and tail["skipped"] == 0  # the line cut by the window is no problem
    assert samples(client, task_id, step=1)["samples"] == []  # only the file's end was read


def test_bad_sample_requests_are_named_errors(client):
    platform = client.app.state.platform
    task_id, _ = add_task(platform)
    negative = client.get("/finetuning/getTaskSamples", params={"id": task_id, "step": -1})
    assert negative.status_code == 422 and "step" in negative.text
    word = client.get("/finetuning/getTaskSamples", params={"id": task_id, "step": "last"})
    assert word.status_code == 422
    missing = client.get("/finetuning/getTaskSamples", params={"id": 999})
    assert missing.status_code == 404 and missing.json()["error"]["code"]
