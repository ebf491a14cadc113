"""The TrainJob a run becomes is one Kubeflow Trainer's CRD accepts (checked against its vendored schema, as strictly
as the API server checks with fieldValidation=Strict), for one GPU up to 4 nodes × 8 GPUs; the executor creates
exactly that object, and says what to fix when the cluster refuses it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.fixtures.k8s_cluster import FakeCluster, api_error, recorded
from tuneforge.rundir import RunDir
from tuneforge.schemas.run_spec import RunSpec
from tuneforge.service.runtime.executor import Placement, WorkerRef
from tuneforge.service.runtime.k8s_manifest import (
    GPU_RESOURCE,
    HOME_VOLUME,
    NAME_MAX,
    NODE,
    KubernetesOptions,
    container_command,
    render_trainjob,
    trainjob_name,
)
from tuneforge.service.runtime.kubernetes import KubernetesExecutor

SCHEMA_FILE = Path(__file__).parents[2] / "fixtures" / "crds" / "trainjob.schema.json"
HOME = "/srv/tuneforge"
OPTIONS = KubernetesOptions(image="registry.example/tuneforge:0.1", pvc="tuneforge-home", home_mount=HOME,
                            namespace="ml", cpu="16", memory="128Gi")


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _strict(node: Any) -> Any:
    """The schema as the API server applies it under fieldValidation=Strict: a field an object does not declare is
    an error (plain JSON Schema would let it through; Kubernetes would silently drop it by default)."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: (_strict(value) if key != "properties" else {k: _strict(v) for k, v in value.items()})
              for key, value in node.items()}
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        closed["additionalProperties"] = False
    return closed


STRICT = jsonschema.Draft202012Validator(_strict(_schema()))
LOOSE = jsonschema.Draft202012Validator(_schema())


def _errors(validator: jsonschema.Draft202012Validator, body: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(body)]


def _name_rules() -> list[re.Pattern[str]]:
    """The CRD's CEL rules on metadata.name (jsonschema cannot run CEL): taken from the schema, so a change there
    shows up here."""
    rules = [rule["rule"] for rule in _schema()["x-kubernetes-validations"]]
    pattern = next(re.search(r"matches\('(.+)'\)", rule) for rule in rules if "matches(" in rule)
    assert pattern is not None and any("<= 63" in rule for rule in rules)
    return [re.compile(pattern.group(1))]


def _placement(nodes: int, per_node: int, kind: str = "cuda", **more: Any) -> Placement:
    return Placement(kind=kind, nodes=nodes, devices_per_node=per_node, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(("nodes", "per_node", "kind"), [(1, 1, "cuda"), (2, 4, "cuda"), (4, 8, "cuda"),
                                                         (1, 1, "cpu"), (2, 4, "cpu")])
def test_rendered_trainjob_is_valid_under_the_crd_schema(nodes, per_node, kind):
    body = render_trainjob(f"{HOME}/runs/task-12", "12", _placement(nodes, per_node, kind), OPTIONS)
    assert _errors(STRICT, body) == []
    name = body["metadata"]["name"]
    assert all(rule.match(name) for rule in _name_rules()) and len(name) <= 63

    trainer = body["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (nodes, per_node)
    assert trainer["command"] == ["torchrun", "-m", "tuneforge.engine.run", f"{HOME}/runs/task-12"]
    limits = trainer["resourcesPerNode"]["limits"]
    assert limits.get(GPU_RESOURCE) == (per_node if kind == "cuda" else None)
    assert trainer["resourcesPerNode"]["requests"] == {"cpu": "16", "memory": "128Gi"}
    env = {item["name"]: item["value"] for item in trainer["env"]}
    assert not any(key.startswith("PET_") for key in env)  # the torch runtime owns (and refuses) those
    assert env["TUNEFORGE_HOME"] == HOME
    assert ("CUDA_VISIBLE_DEVICES" in env) == (kind == "cpu")


def test_the_shared_home_is_mounted_where_the_server_has_it_and_pods_carry_the_labels():
    body = render_trainjob(f"{HOME}/runs/task-7", "7", _placement(2, 4, node_selector={"gpu": "a100"}), OPTIONS)
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"
    assert body["metadata"] == {"name": "tuneforge-task-7", "namespace": "ml", "labels": {
        "app.kubernetes.io/managed-by": "tuneforge", "tuneforge.io/task-id": "7",
        "tuneforge.io/trainjob": "tuneforge-task-7"}}
    assert body["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                          "name": "torch-distributed"}
    [patch] = body["spec"]["runtimePatches"]
    [job] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == NODE  # torch-distributed's replicated job, and its trainer container below
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["labels"] == body["metadata"]["labels"]
    assert pod["spec"]["nodeSelector"] == {"gpu": "a100"}
    assert pod["spec"]["volumes"] == [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "tuneforge-home"}}]
    assert pod["spec"]["containers"] == [{"name": NODE, "volumeMounts": [{"name": HOME_VOLUME, "mountPath": HOME}]}]


def test_without_cpu_or_memory_settings_only_gpus_are_asked_for():
    options = KubernetesOptions(image="img", pvc="home", home_mount=HOME)
    cuda = render_trainjob(f"{HOME}/runs/task-1", "1", _placement(1, 2), options)
    assert cuda["spec"]["trainer"]["resourcesPerNode"] == {"limits": {GPU_RESOURCE: 2}}
    cpu = render_trainjob(f"{HOME}/runs/task-1", "1", _placement(1, 2, "cpu", threads=4), options)
    assert "resourcesPerNode" not in cpu["spec"]["trainer"]
    assert {"name": "OMP_NUM_THREADS", "value": "4"} in cpu["spec"]["trainer"]["env"]
    assert _errors(STRICT, cuda) == _errors(STRICT, cpu) == []


@pytest.mark.parametrize(("cpu", "threads"), [("16", 4), ("3500m", 1), ("2", 1), (None, 3)])
def test_cpu_runs_share_the_nodes_requested_cores_among_their_processes(cpu, threads):
    options = KubernetesOptions(image="img", pvc="home", home_mount=HOME, cpu=cpu)
    body = render_trainjob(f"{HOME}/runs/task-1", "1", _placement(1, 4, "cpu", threads=3), options)
    assert {"name": "OMP_NUM_THREADS", "value": str(threads)} in body["spec"]["trainer"]["env"]


def test_the_schema_check_rejects_a_misspelled_field_and_a_wrong_type():
    body = render_trainjob(f"{HOME}/runs/task-12", "12", _placement(2, 4), OPTIONS)
    misspelled = copy.deepcopy(body)
    misspelled["spec"]["trainer"]["numProcsPerNode"] = misspelled["spec"]["trainer"].pop("numProcPerNode")
    assert any("numProcsPerNode" in error for error in _errors(STRICT, misspelled))
    patched = copy.deepcopy(body)  # the old podTemplateOverrides field name, gone since Trainer v2.2
    patched["spec"]["podTemplateOverrides"] = patched["spec"].pop("runtimePatches")
    assert any("podTemplateOverrides" in error for error in _errors(STRICT, patched))

    wrong_type = copy.deepcopy(body)
    wrong_type["spec"]["trainer"]["numNodes"] = "2"
    assert any(error.startswith("spec.trainer.numNodes") for error in _errors(LOOSE, wrong_type))
    no_runtime = copy.deepcopy(body)
    del no_runtime["spec"]["runtimeRef"]
    assert any("runtimeRef" in error for error in _errors(LOOSE, no_runtime))


def test_names_are_deterministic_dns_labels_that_leave_room_for_pod_hostnames():
    assert trainjob_name(Path(f"{HOME}/runs/task-12")) == trainjob_name(f"{HOME}/runs/task-12") == "tuneforge-task-12"
    assert trainjob_name("/x/Eval_3.copy") == "tuneforge-eval-3-copy"
    long_a, long_b = trainjob_name("/x/" + "a" * 80), trainjob_name("/x/" + "a" * 79)
    assert len(long_a) == len(long_b) == NAME_MAX and long_a != long_b
    [rule] = _name_rules()
    assert all(rule.match(name) for name in (long_a, long_b, trainjob_name("/x/--")))
    assert len(f"{long_a}-{NODE}-999-999") <= 63  # JobSet's pod hostname: <trainjob>-node-<job>-<pod>


def test_a_run_directory_the_pods_cannot_see_is_refused():
    with pytest.raises(ValueError, match="not under the tuneforge home /srv/tuneforge"):
        render_trainjob("/home/me/.tuneforge/runs/task-1", "1", _placement(1, 1), OPTIONS)
    with pytest.raises(ValueError, match="at least 1 × 1"):
        render_trainjob(f"{HOME}/runs/task-1", "1", _placement(0, 1), OPTIONS)


def test_bad_settings_are_reported_together():
    with pytest.raises(ValueError) as caught:
        KubernetesOptions(image=" ", pvc="", home_mount="relative", namespace="Bad_NS", memory="lots")
    text = str(caught.value)
    for field in ("image", "pvc", "home_mount", "namespace", "memory"):
        assert f"{field}:" in text


def test_the_executor_creates_exactly_the_rendered_trainjob(tmp_path):
    pytest.importorskip("kubernetes")
    options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(tmp_path), namespace="ml")
    run_dir = RunDir(tmp_path / "runs" / "task-5").create(RunSpec(config={}, task_id="5")).path
    cluster = FakeCluster()
    executor = KubernetesExecutor(options, custom_objects=cluster, core=cluster, poll_interval_s=0)
    placement = _placement(2, 4, node_selector={"pool": "gpu"})
    launched = executor.launch(run_dir, placement)

    assert launched.pid is None and launched.command == container_command(run_dir)
    [(call, kwargs)] = cluster.calls
    assert call == ("create", "trainer.kubeflow.org", "v1alpha1", "ml", "trainjobs")
    assert kwargs["body"] == render_trainjob(run_dir, "5", placement, options)
    assert kwargs["field_validation"] == "Strict"  # what the strict schema above stands for
    assert executor.poll(WorkerRef(run_dir)).alive


def test_launch_failures_name_what_to_fix(tmp_path):
    pytest.importorskip("kubernetes")
    options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(tmp_path), namespace="ml")
    run_dir = tmp_path / "runs" / "task-5"
    cases = {
        api_error(403, 'trainjobs.trainer.kubeflow.org is forbidden: User "system:serviceaccount:ml:tuneforge" '
                       'cannot create resource "trainjobs" in API group "trainer.kubeflow.org" in the namespace "ml"'):
            "grant its service account create, get and delete on trainjobs",
        api_error(404, "the server could not find the requested resource"): "install Kubeflow Trainer v2.2",
        api_error(404, 'namespaces "ml" not found'): "namespace ml does not exist",
        api_error(403, 'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: '
                       'spec.runtimeRef: Invalid value: "torch-distributed": ClusterTrainingRuntime not found'):
            "check that ClusterTrainingRuntime 'torch-distributed' exists",
        api_error(400, '.spec.runtimePatches: field not declared in schema'): "predates v2.2",
        ConnectionRefusedError(111, "Connection refused"): "cannot reach the Kubernetes API server",
    }
    for error, fix in cases.items():
        cluster = FakeCluster(fail_create=error)
        executor = KubernetesExecutor(options, custom_objects=cluster, core=cluster)
        with pytest.raises(OSError, match=re.escape(fix)):
            executor.launch(run_dir, _placement(1, 1))


def test_a_resumed_run_replaces_its_finished_trainjob_but_never_a_running_one(tmp_path):
    pytest.importorskip("kubernetes")
    options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(tmp_path), namespace="ml")
    run_dir = tmp_path / "runs" / "task-12"
    finished = recorded("complete")["trainjob"]
    cluster = FakeCluster(trainjobs={"tuneforge-task-12": finished})
    executor = KubernetesExecutor(options, custom_objects=cluster, core=cluster, sleep=lambda _: None)
    executor.launch(run_dir, _placement(1, 1))
    assert [call[0] for call, _ in cluster.calls] == ["create", "get", "delete", "get", "create"]
    assert cluster.trainjobs["tuneforge-task-12"]["spec"]["trainer"]["image"] == "img:1"

    running = FakeCluster(trainjobs={"tuneforge-task-12": recorded("running")["trainjob"]})
    executor = KubernetesExecutor(options, custom_objects=running, core=running)
    with pytest.raises(OSError, match="still running in namespace ml; stop it first"):
        executor.launch(run_dir, _placement(1, 1))
    assert "delete" not in [call[0] for call, _ in running.calls]


def test_the_server_starts_without_importing_the_kubernetes_client():
    code = "import sys, tuneforge.service.runtime.kubernetes; print('kubernetes' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_without_the_kubernetes_client_only_a_kubernetes_launch_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if the optional extra were not installed
    options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(tmp_path))
    with pytest.raises(OSError, match=re.escape("pip install 'tuneforge[kubernetes]'")):
        KubernetesExecutor(options).launch(tmp_path / "runs" / "task-1", _placement(1, 1))


def test_the_official_client_posts_to_the_crd_path_strictly_and_deletes_in_the_foreground(tmp_path, monkeypatch):
    """Through the real client (configured from a kubeconfig) against a loopback stand-in for the API server."""
    pytest.importorskip("kubernetes")
    requests: list[tuple[str, str]] = []
    created: dict[str, Any] = {}

    class ApiServer(BaseHTTPRequestHandler):
        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            requests.append(("POST", self.path))
            created.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._reply(201, created)

        def do_GET(self) -> None:
            requests.append(("GET", self.path))
            self._reply(200, recorded("running")["pods"] if "/pods" in self.path else created)

        def do_DELETE(self) -> None:
            requests.append(("DELETE", self.path))
            self._reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "test", "user": {"token": "t"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod: the kubeconfig is used
    try:
        options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(tmp_path), namespace="ml")
        executor = KubernetesExecutor(options, poll_interval_s=0)
        run_dir = tmp_path / "runs" / "task-12"
        executor.launch(run_dir, _placement(2, 4))
        assert executor.poll(WorkerRef(run_dir)).alive
        executor.kill(WorkerRef(run_dir))
    finally:
        server.shutdown()
        server.server_close()
    trainjobs = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs"
    assert requests == [
        ("POST", f"{trainjobs}?fieldManager=tuneforge&fieldValidation=Strict"),
        ("GET", f"{trainjobs}/tuneforge-task-12"),
        ("GET", "/api/v1/namespaces/ml/pods?labelSelector=tuneforge.io/trainjob%3Dtuneforge-task-12"),
        ("DELETE", f"{trainjobs}/tuneforge-task-12?propagationPolicy=Foreground"),
    ]
    assert created == render_trainjob(run_dir, "task-12", _placement(2, 4), options)
