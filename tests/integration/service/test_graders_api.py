"""Stored graders over the native API: create → list → run gives the scores a user expects for string_check and
python graders; a bad grader is a 422 naming the field; a taken name is a 409; a python grader that loops forever
scores that sample 0 with a reason while the request still answers; a model grader asks the deployment serving its
judge directly, and one whose judge is not deployed scores 0 telling the user to deploy it; training and evaluations
turn stored names into grader objects (resolve)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.service.errors import InvalidInput

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}
CONTAINS = {"type": "python", "name": "contains",
            "source": "def grade(sample, item):\n"
                      "    return 1.0 if item['answer'].lower() in sample['output_text'].lower() else 0.0\n"}
LOOPS = {"type": "python", "name": "loops on request",
         "source": "def grade(sample, item):\n"
                   "    while item.get('loop'):\n"
                   "        pass\n"
                   "    return 0.75\n"}
SAMPLES = [{"sample": {"output_text": "Paris"}, "item": {"answer": "Paris"}},
           {"sample": {"output_text": "It is Paris."}, "item": {"answer": "Paris"}},
           {"sample": {"output_text": "London"}, "item": {"answer": "Paris"}}]
needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"python graders: {sandbox_problem()}")


def create(client: Any, name: str, grader: dict[str, Any], **extra: Any) -> Any:
    return client.post("/graders/createGrader", json={"name": name, "grader": grader, **extra})


def scores(run: dict[str, Any]) -> list[float]:
    return [result["score"] for result in run["results"]]


def test_create_list_get_run_update_delete_a_string_check_grader(make_client):
    client = make_client(run_scheduler=False)
    created = create(client, "exact-answer", EXACT, description="the answer, exactly")
    assert created.status_code == 201, created.text
    grader = created.json()
    assert (grader["name"], grader["type"], grader["description"]) == ("exact-answer", "string_check",
                                                                        "the answer, exactly")
    assert grader["grader"] == EXACT and grader["maxSamplesPerRun"] == 100

    listed = client.get("/graders/getGraderList").json()
    assert listed["total"] == 1 and [g["name"] for g in listed["items"]] == ["exact-answer"]
    assert client.get("/graders/getGraderList", params={"type": "python"}).json()["total"] == 0
    assert client.get("/graders/getGrader", params={"name": "exact-answer"}).json()["id"] == grader["id"]

    run = client.post("/graders/runGrader", json={"graderId": grader["id"], "samples": SAMPLES})
    assert run.status_code == 200, run.text
    assert scores(run.json()) == [1.0, 0.0, 0.0]
    assert run.json()["mean"] == pytest.approx(1 / 3)
    assert (run.json()["name"], run.json()["type"], run.json()["count"]) == ("exact-answer", "string_check", 3)

    # the same grader by name, and changed to "contains" (ilike): the second answer now passes too
    updated = client.post("/graders/updateGrader", json={"id": grader["id"], "grader": EXACT | {"operation": "ilike"}})
    assert updated.status_code == 200, updated.text
    run = client.post("/graders/runGrader", json={"graderName": "exact-answer", "samples": SAMPLES}).json()
    assert scores(run) == [1.0, 1.0, 0.0] and run["mean"] == pytest.approx(2 / 3)

    deleted = client.delete("/graders/deleteGrader", params={"id": grader["id"]})
    assert deleted.json() == {"id": grader["id"], "name": "exact-answer", "deleted": True}
    missing = client.get("/graders/getGrader", params={"id": grader["id"]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_an_inline_grader_runs_without_being_stored(make_client):
    client = make_client(run_scheduler=False)
    similar = {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
               "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}
    run = client.post("/graders/runGrader", json={"grader": similar, "samples": SAMPLES[:1] + SAMPLES[2:]})
    assert run.status_code == 200, run.text
    exact, far = scores(run.json())
    assert exact == pytest.approx(1.0) and 0 <= far < 0.5
    assert run.json()["graderId"] is None
    assert client.get("/graders/getGraderList").json()["total"] == 0


@needs_sandbox
def test_a_python_grader_scores_each_sample(make_client):
    client = make_client(run_scheduler=False)
    grader = create(client, "contains-answer", CONTAINS).json()
    run = client.post("/graders/runGrader", json={"graderId": grader["id"], "samples": SAMPLES})
    assert run.status_code == 200, run.text
    assert scores(run.json()) == [1.0, 1.0, 0.0]
    assert [r["reason"] for r in run.json()["results"]] == [None, None, None]
    assert run.json()["mean"] == pytest.approx(2 / 3)


@needs_sandbox
def test_a_python_grader_that_loops_forever_scores_that_sample_0_and_the_request_answers(make_client):
    client = make_client(run_scheduler=False)
    grader = create(client, "loops", LOOPS).json()
    samples = [{"sample": {"output_text": "a"}, "item": {}}, {"sample": {"output_text": "b"}, "item": {"loop": True}},
               {"sample": {"output_text": "c"}, "item": {}}]
    run = client.post("/graders/runGrader", json={"graderId": grader["id"], "samples": samples})
    assert run.status_code == 200, run.text
    results = run.json()["results"]
    assert scores(run.json()) == [0.75, 0.0, 0.75]
    assert results[1]["reason"] and "time" in results[1]["reason"].lower(), results[1]
    assert results[0]["reason"] is None and results[2]["reason"] is None


def test_a_model_grader_whose_judge_is_not_deployed_scores_0_and_says_to_deploy_it(make_client):
    client = make_client(run_scheduler=False)
    judge = {"type": "score_model", "name": "judge", "model": "no-such-judge",
             "input": [{"role": "user", "content": "Score {{sample.output_text}} against {{item.answer}}"}]}
    grader = create(client, "judged", judge)
    assert grader.status_code == 201, grader.text  # stored: the judge may be deployed later
    run = client.post("/graders/runGrader", json={"graderId": grader.json()["id"], "samples": SAMPLES[:2]})
    assert run.status_code == 200, run.text
    assert scores(run.json()) == [0.0, 0.0]
    reason = run.json()["results"][0]["reason"]
    assert "no-such-judge" in reason and "deploy" in reason


@pytest.mark.parametrize(("grader", "field"), [
    (EXACT | {"operation": "equals"}, "grader.operation"),
    ({k: v for k, v in EXACT.items() if k != "reference"}, "grader.reference"),
    ({"type": "text_similarity", "name": "x", "input": "a", "reference": "b", "evaluation_metric": "nonsense"},
     "grader.evaluation_metric"),
    ({"name": "no type", "input": "a"}, "grader.type"),
    ({"type": "telepathy", "name": "x"}, "grader.type"),
    (EXACT | {"colour": "blue"}, "grader.colour"),
    ({"type": "multi", "name": "m", "calculate_output": "a", "graders": {"a": EXACT | {"operation": "is"}}},
     "grader.graders.a.operation"),
    ({"type": "python", "name": "p", "source": "def score(sample, item):\n    return 1\n"}, "grader.source"),
])
def test_a_bad_grader_is_a_422_naming_the_field(make_client, grader, field):
    client = make_client(run_scheduler=False)
    answer = create(client, "bad", grader)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in [d["field"] for d in error["details"]], error
    assert error["message"].startswith(error["details"][0]["field"])
    # validateGrader says the same without storing anything
    verdict = client.post("/graders/validateGrader", json={"grader": grader}).json()
    assert verdict["valid"] is False and field in [p["field"] for p in verdict["problems"]]
    assert client.get("/graders/getGraderList").json()["total"] == 0


# A deployment's serving process stand-in: answers /health, and /v1/chat/completions as a judge that gives 0.9 when
# the prompt holds "Paris", else 0.1; it writes each request it gets to requests.jsonl beside itself.
JUDGE_STAND_IN = """#!{python}
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
log = {log!r}

class Judge(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer({{"status": "ok"}})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(log, "a") as out:
            out.write(json.dumps({{"path": self.path, **request}}) + "\\n")
        prompt = " ".join(m["content"] for m in request["messages"])
        score = 0.9 if "Paris" in prompt else 0.1
        self.answer({{"choices": [{{"message": {{"role": "assistant", "content": json.dumps({{"result": score}})}}}}]}})

HTTPServer(("127.0.0.1", port), Judge).serve_forever()
"""


def test_a_model_grader_asks_the_deployment_that_serves_its_judge(make_client, tmp_path, tiny_model_dir):
    client = make_client(run_scheduler=False)
    platform = client.app.state.platform
    stand_in = tmp_path / "judge-stand-in"
    stand_in.write_text(JUDGE_STAND_IN.format(python=sys.executable, log=str(tmp_path / "requests.jsonl")),
                        encoding="utf-8")
    stand_in.chmod(0o755)
    platform.deployments.python = str(stand_in)  # launched as `python -m tuneforge.serving … --port N`
    model = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
    deployment = client.post("/deployments/createDeployment", json={"name": "judge-live", "modelId": model["id"]})
    assert deployment.status_code == 201, deployment.text
    try:
        deadline = time.monotonic() + 300  # only guards against a hang: the loop ends once it runs
        while platform.deployments.get(deployment.json()["id"])["status"] != "running":
            assert time.monotonic() < deadline, platform.deployments.get(deployment.json()["id"])
            platform.deployments.watch()
            time.sleep(0.1)
        judge = {"type": "score_model", "name": "judge", "model": "judge-live", "sampling_params": {"seed": 7},
                 "input": [{"role": "user", "content": "Answer: {{sample.output_text}}"}]}
        run = client.post("/graders/runGrader", json={"grader": judge, "samples": SAMPLES})
        assert run.status_code == 200, run.text
        assert scores(run.json()) == [0.9, 0.9, 0.1]
        requests = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
        assert [(r["path"], r["model"], r["seed"]) for r in requests] == [("/v1/chat/completions", "judge-live", 7)] * 3
        # the registered model's name reaches the same deployment, as in /v1/chat/completions
        by_model = client.post("/graders/runGrader", json={"grader": judge | {"model": "tiny"}, "samples": SAMPLES})
        assert scores(by_model.json()) == [0.9, 0.9, 0.1]
        client.post("/deployments/stopDeployment", json={"id": deployment.json()["id"]})
        stopped = client.post("/graders/runGrader", json={"grader": judge, "samples": SAMPLES[:1]}).json()
        assert stopped["results"][0]["score"] == 0.0 and "is stopped" in stopped["results"][0]["reason"]
    finally:
        client.delete("/deployments/deleteDeployment", params={"id": deployment.json()["id"]})


def test_names_are_checked_and_a_taken_name_is_a_409(make_client):
    client = make_client(run_scheduler=False)
    assert create(client, "exact", EXACT).status_code == 201
    taken = create(client, "exact", EXACT)
    assert taken.status_code == 409 and taken.json()["error"]["details"] == [{"field": "name", "message": "exists"}]
    bad = create(client, "Exact Answer!", EXACT)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "name"
    other = create(client, "other", EXACT).json()
    renamed = client.post("/graders/updateGrader", json={"id": other["id"], "name": "exact"})
    assert renamed.status_code == 409
    assert client.post("/graders/validateGrader", json={"grader": EXACT}).json() == {
        "valid": True, "type": "string_check", "problems": []}


def test_bad_samples_are_422s_naming_the_sample(make_client):
    client = make_client(run_scheduler=False)
    grader = create(client, "exact", EXACT).json()

    def run(samples: Any, **body: Any) -> Any:
        return client.post("/graders/runGrader", json={"graderId": grader["id"], "samples": samples, **body})

    answer = run([SAMPLES[0], {"item": {"answer": "x"}}])
    assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "samples.1.sample"
    answer = run([{"sample": {"output_text": 7}}])
    assert answer.json()["error"]["details"][0]["field"] == "samples.0.sample.output_text"
    assert run([{"sample": {}, "extra": 1}]).json()["error"]["details"][0]["field"] == "samples.0.extra"
    assert run(SAMPLES * 34).status_code == 422  # 102 samples: at most 100 a run
    assert run([{"sample": {"output_text": "x" * 200_000}}]).json()["error"]["details"][0]["field"] == "samples.0"
    assert run(SAMPLES, grader=EXACT).status_code == 422  # graderId and an inline grader: which one?
    assert client.post("/graders/runGrader", json={"samples": SAMPLES}).status_code == 422
    assert client.post("/graders/runGrader", json={"graderId": 999, "samples": SAMPLES}).status_code == 404


def test_slow_graders_take_fewer_samples_per_run(make_client):
    client = make_client(run_scheduler=False)
    judge = {"type": "label_model", "name": "j", "model": "judge", "labels": ["yes", "no"], "passing_labels": ["yes"],
             "input": [{"role": "user", "content": "{{sample.output_text}}"}]}
    multi = {"type": "multi", "name": "m", "calculate_output": "a + b + c",
             "graders": {"a": judge, "b": judge, "c": judge | {"name": "k"}}}
    grader = create(client, "three-judges", multi).json()
    assert grader["maxSamplesPerRun"] == 66
    answer = client.post("/graders/runGrader", json={"graderId": grader["id"], "samples": SAMPLES * 23})
    assert answer.status_code == 422 and "at most 66 samples" in answer.json()["error"]["message"]


def test_resolve_turns_stored_names_into_grader_objects(make_client):
    client = make_client(run_scheduler=False)
    create(client, "exact", EXACT)
    service = client.app.state.platform.graders
    resolved = service.resolve(["exact", EXACT | {"name": "inline"}])
    assert [(g.type, g.name) for g in resolved] == [("string_check", "exact"), ("string_check", "inline")]
    with pytest.raises(InvalidInput) as refused:
        service.resolve(["exact", "missing", {"type": "string_check"}], field="trainingArgs.rewards")
    fields = [d["field"] for d in refused.value.details]
    assert fields[0] == "trainingArgs.rewards.1" and "trainingArgs.rewards.2.name" in fields
