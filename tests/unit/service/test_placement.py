"""gpuConfig's placement: each wrong value is named at its key, before anything is created."""

from __future__ import annotations

import pytest

from tuneforge.planning.devices import Device
from tuneforge.service.tasks.placement import requested_placement
from tuneforge.service.tasks.planning import ray_workers

CPUS = [Device(index=i, kind="cpu", name=f"slot {i}", total_memory=2**34, free_memory=2**33) for i in range(2)]
ALL = ("local", "ray", "kubernetes")


@pytest.mark.parametrize(("gpu_config", "executors", "field", "says"), [
    ({"executor": "kubernetes"}, ("local", "ray"), "gpuConfig.executor", "TUNEFORGE_KUBERNETES_IMAGE"),
    ({"nodes": 2}, ALL, "gpuConfig.nodes", "ray or kubernetes executor"),
    ({"executor": "ray", "nodes": 0}, ALL, "gpuConfig.nodes", "from 1 to"),
    ({"executor": "ray", "node_selector": {"pool": "a"}}, ALL, "gpuConfig.node_selector", "executor kubernetes"),
    ({"executor": "kubernetes", "node_selector": "pool=a"}, ALL, "gpuConfig.node_selector", "label names"),
    ({"executor": "kubernetes", "node_selector": {"a b/c?": "x y"}}, ALL, "gpuConfig.node_selector", "label names"),
    ({"executor": "kubernetes", "node_selector": {"pool": "x" * 64}}, ALL, "gpuConfig.node_selector", "≤ 63"),
    ({"executor": "kubernetes", "cuda_visible_devices": "0"}, ALL, "gpuConfig.cuda_visible_devices",
     "gpu_count per node"),
    ({"executor": "ray", "gpu_count": 0}, ALL, "gpuConfig.gpu_count", "from 1 to"),
    ({"nodes": 1, "zone": "b"}, ALL, "gpuConfig.zone", "unknown key"),
])
def test_a_wrong_placement_is_named_at_its_key(gpu_config, executors, field, says):
    problems = {p.field: p.message for p in requested_placement(gpu_config, CPUS, executors).problems}
    assert field in problems and says in problems[field], problems


def test_a_kubernetes_placement_counts_every_node_s_devices():
    placement = requested_placement({"executor": "kubernetes", "nodes": 4, "gpu_count": 8,
                                     "node_selector": {"nvidia.com/gpu.product": "H100"}}, CPUS, ALL)
    assert not placement.problems and (placement.count, placement.nodes, placement.indexes) == (32, 4, None)
    assert len(placement.plan_devices(CPUS)) == 32  # planned as 32 devices like this host's


def test_a_ray_placement_becomes_ray_num_workers_and_the_config_key_alone_asks_for_ray():
    raw: dict = {}
    placement = requested_placement({"executor": "ray", "nodes": 2, "gpu_count": 2}, CPUS, ALL)
    assert ray_workers(raw, {"executor": "ray"}, placement) == [] and raw["ray_num_workers"] == 4
    alone = requested_placement({}, CPUS, ALL)
    assert ray_workers({"ray_num_workers": 3}, {}, alone) == [] and (alone.executor, alone.count) == ("ray", 3)


def test_ray_num_workers_disagreeing_with_the_placement_is_named():
    placement = requested_placement({"executor": "ray", "nodes": 2}, CPUS, ALL)
    (problem,) = ray_workers({"ray_num_workers": 3}, {"executor": "ray", "nodes": 2}, placement)
    assert problem.field == "trainingArgs.ray_num_workers" and "give it once" in problem.message
    (problem,) = ray_workers({"ray_num_workers": 3}, {"executor": "kubernetes"},
                             requested_placement({"executor": "kubernetes"}, CPUS, ALL))
    assert "remove one of them" in problem.message


def test_ray_num_workers_is_counted_as_the_schema_reads_it_and_cannot_share_local_devices():
    raw = {"ray_num_workers": "8"}
    placement = requested_placement({"executor": "ray"}, CPUS, ALL)
    assert ray_workers(raw, {"executor": "ray"}, placement) == [] and placement.count == 8  # max_gpus sees 8
    (problem,) = ray_workers({"ray_num_workers": 2}, {"gpu_count": 2}, requested_placement({"gpu_count": 2}, CPUS,
                                                                                           ALL))
    assert problem.field == "trainingArgs.ray_num_workers" and "this host's devices" in problem.message


def test_a_server_takes_only_a_namespace_for_ray_init():
    raw = {"ray_num_workers": 2, "ray_init_kwargs": {"namespace": "a", "runtime_env": {"pip": ["x"]}}}
    (problem,) = ray_workers(raw, {}, requested_placement({}, CPUS, ALL))
    assert problem.field == "trainingArgs.ray_init_kwargs" and "'runtime_env'" in problem.message
    assert ray_workers({"ray_num_workers": 2, "ray_init_kwargs": {"namespace": "a"}}, {},
                       requested_placement({}, CPUS, ALL)) == []


@pytest.mark.parametrize(("args", "says"), [
    ({"ray_init_kwargs": {"_system_config": {}}}, "not taken here"),
    ({"ray_init_kwargs": {"address": "auto"}}, "TUNEFORGE_RAY_ADDRESS"),
    ({"resources_per_worker": {"GPU": 0.5}}, "whole GPUs"),
    ({"resources_per_worker": "{\"TPU\": 1}"}, "unknown resource 'TPU'"),
])
def test_ray_settings_the_run_cannot_honour_are_refused(args, says):
    from tuneforge.schemas import ConfigError, parse_training_config

    with pytest.raises(ConfigError) as caught:
        parse_training_config({"model_name_or_path": "m", "ray_num_workers": 2, **args})
    assert says in str(caught.value)
