"""Several nodes training one run with `tuneforge train`, as LLaMA-Factory documents it (NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT): two "nodes" on this host share the output folder, as nodes share storage, and train
exactly like one process with their global batch. A node that cannot reach the master says so within its timeout."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli.test_train_cli import workdir, write_config  # noqa: F401  (workdir: a fixture)
from tests.integration.engine.conftest import losses
from tuneforge.cli.multinode import LaunchError, check_master, launch_from_env
from tuneforge.rundir import read_events
from tuneforge.rundir.launch import NodeLayout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_node(folder: Path, config: Path, env: dict[str, str]) -> subprocess.Popen:
    full = {**os.environ, "TUNEFORGE_HOME": str(folder.parent / f"{folder.name}-home"), "COLUMNS": "100", **env}
    return subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "train", str(config)], cwd=folder,
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_nodes_train_like_one_process_with_their_global_batch(workdir, tiny_model_dir):  # noqa: F811
    port = free_port()
    # An even number of samples: a distributed sampler pads an odd epoch with a repeated sample, one process not.
    lines = [{"instruction": f"What is {a} plus {a}?", "output": f"{2 * a}."} for a in range(4)]
    (workdir / "configs" / "even.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = write_config(workdir, tiny_model_dir, dataset="even.jsonl", per_device_train_batch_size=1, max_steps=6,
                          save_steps=100)
    nodes = {"NNODES": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NPROC_PER_NODE": "1",
             "TUNEFORGE_RENDEZVOUS_TIMEOUT_S": "120"}
    second = start_node(workdir, config, {**nodes, "NODE_RANK": "1"})  # may start first: it waits for node 0
    time.sleep(1)
    first = start_node(workdir, config, {**nodes, "NODE_RANK": "0"})
    out_first, out_second = first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]
    assert first.returncode == 0, out_first[-3000:]
    assert second.returncode == 0, out_second[-3000:]
    assert "node 1 of 2" in out_second and "progress shows on node 0" in out_second

    run = workdir / "saves" / "run"
    events = read_events(run / "events.jsonl")
    assert [e["type"] for e in events].count("completed") == 1  # global rank 0 alone writes the events
    reference_config = write_config(workdir, tiny_model_dir, dataset="even.jsonl", per_device_train_batch_size=2,
                                    max_steps=6, save_steps=100, output_dir="saves/one")
    alone = start_node(workdir, reference_config, {})
    assert alone.wait(timeout=300) == 0
    reference = losses(read_events(workdir / "saves" / "one" / "events.jsonl"))
    curve = losses(events)
    assert sorted(curve) == sorted(reference)
    for step, loss in curve.items():  # all-reduced across the nodes: the very same optimisation
        assert loss == pytest.approx(reference[step], rel=1e-4), (step, curve, reference)
    assert (run / "adapter_model.safetensors").is_file()


def test_a_node_that_cannot_reach_the_master_says_so_within_its_timeout():
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        check_master(NodeLayout(2, 1, "127.0.0.1", port), timeout_s=2)
    # It gives up at its 2 s deadline. Loosely bounded, as a loaded machine may add seconds to its retries: a check
    # that ignored its timeout would retry for ever.
    assert time.monotonic() - started < 120
    message = str(caught.value)
    assert f"node 1 cannot reach the master node at 127.0.0.1:{port} within 2 s" in message
    assert "connection refused" in message and "firewall" in caught.value.hint


def test_the_master_node_checks_it_can_listen_where_the_others_will_look():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LaunchError, match=re.escape(f"port {port} of 127.0.0.1:{port} is already in use")):
            check_master(NodeLayout(2, 0, "127.0.0.1", port), timeout_s=1)
    # 192.0.2.1 is a documentation address no host has: node 0 cannot listen there (nothing is sent).
    with pytest.raises(LaunchError, match=re.escape("cannot listen on 192.0.2.1")) as caught:
        check_master(NodeLayout(2, 0, "192.0.2.1", free_port()), timeout_s=1)
    assert "MASTER_ADDR must be an address of node 0" in caught.value.hint


@pytest.mark.parametrize(("env", "said"), [
    ({"NNODES": "2", "MASTER_ADDR": "10.0.0.1"}, "NODE_RANK is not"),
    ({"NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "10.0.0.1"}, "NODE_RANK 2 is not below NNODES 2"),
    ({"NNODES": "2", "NODE_RANK": "1"}, "MASTER_ADDR is not"),
    ({"NNODES": "two"}, "NNODES='two' is not a whole number"),
    ({"NPROC_PER_NODE": "0"}, "NPROC_PER_NODE=0 is below 1"),
])
def test_bad_launch_settings_are_named(env, said):
    with pytest.raises(LaunchError, match=re.escape(said)):
        launch_from_env(env, devices=0, sharded=False)


def test_launch_follows_the_gpus_the_strategy_and_force_torchrun():
    assert launch_from_env({}, devices=0, sharded=False) == launch_from_env({}, devices=1, sharded=False)
    assert not launch_from_env({}, devices=1, sharded=False).torchrun
    assert launch_from_env({}, devices=4, sharded=False).nproc == 4  # every visible GPU, as LLaMA-Factory does
    assert launch_from_env({}, devices=1, sharded=True).torchrun  # DeepSpeed / FSDP need a process group
    assert launch_from_env({"FORCE_TORCHRUN": "1"}, devices=0, sharded=False).torchrun
    layout = launch_from_env({"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1"}, 8, False).nodes
    assert layout == NodeLayout(2, 1, "10.0.0.1", 29500)


def test_the_plan_counts_every_rank_the_launch_starts():
    from tuneforge.cli.multinode import Launch, run_devices
    from tuneforge.planning.devices import Device

    gpus = [Device(i, "cuda", "NVIDIA H100", 80 * 2**30, 80 * 2**30) for i in range(8)]
    four_nodes = Launch(8, torchrun=True, nodes=NodeLayout(4, 0, "10.0.0.1", 29500))
    devices = run_devices(gpus, four_nodes)
    assert len(devices) == 32 and len({d.index for d in devices}) == 32
    assert len(run_devices(gpus, Launch(2, torchrun=True, nodes=None))) == 2  # NPROC_PER_NODE=2 of 8 GPUs
    cpu = run_devices([], Launch(2, torchrun=True, nodes=None))
    assert [d.kind for d in cpu] == ["cpu", "cpu"]


def test_cuda_visible_devices_narrows_the_gpus(monkeypatch):
    from tuneforge.cli import multinode
    from tuneforge.planning import devices

    gpus = [devices.Device(i, "cuda", "NVIDIA H100", 80 * 2**30, 80 * 2**30) for i in range(4)]
    monkeypatch.setattr(devices, "detect_devices", lambda *a: gpus)
    assert [d.index for d in multinode.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"})] == [2, 3]
    assert multinode.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []  # a CPU run on a GPU host
    assert len(multinode.visible_gpus({})) == 4


def test_a_bad_rendezvous_timeout_is_named():
    from tuneforge.cli.multinode import rendezvous_timeout

    with pytest.raises(LaunchError, match="TUNEFORGE_RENDEZVOUS_TIMEOUT_S='soon'"):
        rendezvous_timeout({"TUNEFORGE_RENDEZVOUS_TIMEOUT_S": "soon"})
    assert rendezvous_timeout({}) == 300
