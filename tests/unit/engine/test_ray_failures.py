"""Ray's failure report → the one line a user reads: the lost worker, where and why, ahead of the broken
collective the surviving rank saw."""

from __future__ import annotations

import json

from tuneforge.engine.ray_failures import (
    HELD_FAILURE_FILE,
    ReportToRunDir,
    controller_report,
    describe,
    write_failure,
)
from tuneforge.rundir import RunDir, read_events

# The shape Ray Train 2.60 reports a worker killed with SIGKILL in (recorded, trimmed).
RAY_REPORT = """Training failed due to worker errors:
[Rank 0 Error Snippet]:
Traceback (most recent call last):
RuntimeError: worker rank 0 failed (exit 1); its report is in the run directory
[Rank 1 Error Snippet]:
A worker health check failed.
Worker info: Worker(
  metadata=ActorMetadata(
    hostname='vm',
    node_ip='10.0.0.7',
    pid=17607,
  ),
)
The actor died unexpectedly before finishing this task.
\tclass_name: RayTrainWorker
\tpid: 17607
\tip: 10.0.0.7
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker \
unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the OOM killer"""
GLOO = {"step": 4, "checkpoint": None, "error": "RuntimeError: [gloo] Read error: Connection reset by peer",
        "hint": "see train.log"}


def test_the_lost_worker_is_named_with_its_rank_pid_node_and_ray_s_reason():
    error, hint = describe(RAY_REPORT)
    assert error == ("a Ray worker was lost: rank 1 (pid 17607 on 10.0.0.7) died — Ray: Worker unexpectedly "
                     "exits with a connection error code 2")
    assert "resume" in hint


def test_an_error_a_worker_raised_is_reported_by_its_exception_line_not_as_a_lost_worker():
    raised = ("Training failed due to worker errors:\n[Rank 1 Error Snippet]:\nTraceback (most recent call last):\n"
              "  File \"train.py\", line 3, in step\ntorch.OutOfMemoryError: the process lost 2 GiB and died")
    error, hint = describe(raised)
    assert error == "Ray Train failed: rank 1: torch.OutOfMemoryError: the process lost 2 GiB and died"
    assert "train.log" in hint


def test_a_lost_worker_wins_over_the_broken_collective_rank_0_saw(tmp_path):
    run_dir = RunDir(tmp_path)
    (tmp_path / HELD_FAILURE_FILE).write_text(json.dumps(GLOO))
    ReportToRunDir(str(tmp_path)).after_exception(None, {1: RuntimeError(RAY_REPORT.split("[Rank 1 Error "
                                                                                          "Snippet]:\n")[1])})
    report = controller_report(run_dir)
    assert report is not None and report[0].startswith("a Ray worker was lost: rank 1 (pid 17607")
    write_failure(run_dir, report)
    (event,) = read_events(run_dir.events_file)
    assert event["type"] == "failed" and event["error"] == report[0]


def test_rank_0_s_own_failure_stands_when_no_worker_was_lost(tmp_path):
    run_dir = RunDir(tmp_path)
    (tmp_path / HELD_FAILURE_FILE).write_text(json.dumps(GLOO))
    write_failure(run_dir, describe("RuntimeError: worker rank 0 failed (exit 1)"))
    (event,) = read_events(run_dir.events_file)
    assert event["error"] == GLOO["error"] and event["step"] == 4
    assert event["hint"] == "see train.log; resume the task: it continues from its last checkpoint"
