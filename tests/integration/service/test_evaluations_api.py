"""Evaluation jobs through the API: a published fine-tune scored beside its base on the valid split (no test file),
with a stored grader (by name) and an inline one, the report with the change and the best / worst samples, the
model's detail listing it; bad input — an unknown grader, one that cannot run — is a clear 4xx."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.service.conftest import task_body, wait_for


def _until_done(client, evaluation_id: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        data = client.get("/evaluations/getEvaluation", params={"id": evaluation_id}).json()
        seen.append(data["percentage"])
        if data["status"] in ("completed", "failed", "stopped"):
            return data | {"seen": seen}
        time.sleep(0.3)
    raise AssertionError(f"evaluation {evaluation_id} still {data['status']} after {timeout} s")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_fine_tune_is_scored_beside_its_base_and_the_report_shows_the_change(make_client, tiny_model_dir,
                                                                               dataset_dir):
    client = make_client()
    task = client.post("/finetuning/createTask", json=task_body("to-eval", tiny_model_dir, dataset_dir,
                                                                max_steps=6)).json()
    assert wait_for(client, task["id"], {"completed", "failed"})["status"] == "completed"
    model = client.post("/models/publishModel", json={"taskId": task["id"], "name": "qa-tuned"}).json()
    stored = client.post("/graders/createGrader", json={"name": "mentions-answer", "grader": {
        "type": "string_check", "name": "mentions", "operation": "ilike", "input": "{{sample.output_text}}",
        "reference": "{{item.output}}"}})
    assert stored.status_code == 201, stored.text
    inline = {"type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
              "input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}"}

    created = client.post("/evaluations/createEvaluation", json={"modelId": model["id"], "maxNewTokens": 8,
                                                                 "graders": ["mentions-answer", inline]})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "running" and created.json()["baseline"].startswith("base: ")
    done = _until_done(client, created.json()["id"])
    assert done["status"] == "completed", done["error"]
    assert done["split"] == "valid" and done["dataset"] == str(dataset_dir)  # no test file: the valid split
    assert done["seen"] == sorted(done["seen"]) and done["percentage"] == 100.0

    report = done["report"]
    base, tuned = report["models"]
    assert (base["label"], tuned["label"]) == ("base", "qa-tuned")
    assert tuned["eval_loss"] < base["eval_loss"]  # six steps on these answers lower their loss
    assert report["change"]["eval_loss"] == pytest.approx(tuned["eval_loss"] - base["eval_loss"], abs=1e-3)
    assert all(0 <= m[k] <= 100 for m in report["models"] for k in ("bleu_4", "rouge_1", "rouge_2", "rouge_l"))
    assert tuned["bestSamples"] and set(tuned["bestSamples"][0]["outputs"]) == {"base", "qa-tuned"}
    # each grader's mean per model, side by side, and the change; each answer's own grade in the samples
    for scores in (base, tuned):
        assert set(scores["graders"]) == {"mentions", "close"} and all(0 <= v <= 1 for v in scores["graders"].values())
    assert report["change"]["graders"]["close"] == pytest.approx(
        tuned["graders"]["close"] - base["graders"]["close"], abs=1e-6)
    sample = report["samples"][0]
    assert sample["item"]["reference_answer"] == sample["reference"] == sample["item"]["output"]
    assert set(sample["outputs"]["qa-tuned"]["graders"]) == {"mentions", "close"}
    assert {s["label"]: s["graders"] for s in done["scores"]} == {"base": base["graders"],
                                                                   "qa-tuned": tuned["graders"]}

    detail = client.get("/models/getModel", params={"id": model["id"]}).json()
    assert [e["id"] for e in detail["evaluations"]] == [done["id"]]
    assert {s["label"] for s in detail["evaluations"][0]["scores"]} == {"base", "qa-tuned"}
    listed = client.get("/evaluations/getEvaluationList", params={"modelId": model["id"]}).json()
    assert listed["total"] == 1 and listed["items"][0]["status"] == "completed"
    assert client.post("/evaluations/stopEvaluation", json={"id": done["id"]}).status_code == 409
    assert client.delete("/models/deleteModel", params={"id": model["id"]}).json()["deleted"]
    assert not Path(done["jobDir"]).exists()  # the model's evaluations go with it
    assert client.get("/evaluations/getEvaluation", params={"id": done["id"]}).status_code == 404


def test_bad_evaluation_requests_name_the_field_and_start_nothing(make_client, tiny_model_dir):
    client = make_client(run_scheduler=False)
    missing = client.post("/evaluations/createEvaluation", json={"modelId": 99})
    assert missing.status_code == 404 and missing.json()["error"]["details"][0]["field"] == "modelId"
    base = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
    no_data = client.post("/evaluations/createEvaluation", json={"modelId": base["id"]})
    assert no_data.status_code == 422 and no_data.json()["error"]["details"][0]["field"] == "dataset"
    ghost = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": "ghost@v3"})
    assert ghost.status_code == 422 and "ghost" in ghost.json()["error"]["message"]
    outside = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": "/etc/passwd"})
    assert outside.status_code == 422
    bad = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": "identity",
                                                              "maxSamples": 0})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "max_samples"
    for graders, field, words in [
        (["no-such-grader"], "graders.0", "no grader named"),
        ([{"type": "text_similarity", "name": "m", "input": "a", "reference": "b", "evaluation_metric": "meteor"}],
         "graders.0.evaluation_metric", "WordNet"),
        ([{"type": "score_model", "name": "judge", "model": "m", "input": [{"role": "user", "content": "x"}]}],
         "graders", "judge model"),
        (["bad\u0000name"], "graders", "NUL"),
    ]:
        refused = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": "identity",
                                                                     "graders": graders})
        assert refused.status_code == 422, refused.text
        detail = refused.json()["error"]["details"][0]
        assert detail["field"] == field and words in detail["message"] + refused.json()["error"]["message"], detail
    assert client.get("/evaluations/getEvaluationList").json()["total"] == 0
