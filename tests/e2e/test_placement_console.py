"""The create form's placement fields (executor, machines, node selector) in a real browser: what they send reaches
the planner, and its verdict shows at the field that caused it."""

from __future__ import annotations

from tests.e2e.test_tasks_console import open_section


def test_the_placement_fields_reach_the_planner_and_its_verdict_shows_at_them(console_server, page, page_errors,
                                                                              shoot):
    page.goto("/console/tasks/new")
    page.fill("#f-name", "ray-placement")
    page.fill("#f-baseModel", str(console_server.model_dir))
    open_section(page, "data")
    page.fill("#f-datasetPath", str(console_server.dataset_dir))
    open_section(page, "output")
    page.select_option("[id='f-gpuConfig.executor']", "ray")
    page.fill("[id='f-gpuConfig.nodes']", "2")
    page.fill("[id='f-gpuConfig.node_selector']", "pool=a100")
    open_section(page, "confirm")
    selector_error = page.locator("[data-field='gpuConfig.node_selector'] .field-error")
    selector_error.wait_for()
    assert "executor kubernetes" in selector_error.inner_text()
    shoot("1-node-selector-needs-kubernetes")
    page.fill("[id='f-gpuConfig.node_selector']", "")
    open_section(page, "confirm")
    # This server has no Ray cluster: its own Ray would run on its one CPU slot, too few for 2 machines.
    nodes_error = page.locator("[data-field='gpuConfig.nodes'] .field-error")
    nodes_error.wait_for()
    assert "TUNEFORGE_RAY_ADDRESS" in nodes_error.inner_text()
    shoot("2-too-many-workers-for-this-host")
    page.fill("[id='f-gpuConfig.nodes']", "1")
    open_section(page, "confirm")
    page.locator("#estimate-table").wait_for()
    shoot("3-one-ray-worker")
    assert console_server.platform.tasks.list()["total"] == 0
    unexpected = [e for e in page_errors if "status of 422" not in e]  # the refused estimate, as the browser logs it
    assert not unexpected, "\n".join(unexpected)
