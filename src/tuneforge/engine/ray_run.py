"""The Ray driver: `python -m tuneforge.engine.ray_run RUN_DIR` trains the run as `ray_num_workers` Ray Train
workers, each the same worker `python -m tuneforge.engine.run` would be, in a Ray actor.

Ray Train places the workers (`resources_per_worker`, `placement_strategy`) and sets up the process group with the
RANK / WORLD_SIZE / MASTER_ADDR environment torchrun would give, so the worker trains unchanged; rank 0 writes the
events into the run directory, which must be on storage every node sees. This process joins the cluster at
TUNEFORGE_RAY_ADDRESS (or RAY_ADDRESS; neither: a Ray of its own on this host), and its end is the run's end: the
service watches it like a local worker. A stop (SIGTERM here, or the run directory's STOP file) reaches every
worker at its next step; a lost worker or node fails the run with the reason, and a resume continues from the last
checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.rundir import RunDir, read_events
from tuneforge.schemas.events import FINAL_EVENT_TYPES

if TYPE_CHECKING:
    from tuneforge.schemas import TrainingConfig

log = logging.getLogger("tuneforge.ray")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# After Ray Train's controller reported a failure, how long fit() may take to return before the driver reports it
# itself (the controller's cleanup can wait on Ray's state API for many seconds).
REPORT_GRACE_S = 2.0


def main(argv: list[str] | None = None) -> int:
    from tuneforge.engine.run import run_dir_argument

    run_dir = run_dir_argument(argv, "tuneforge.engine.ray_run")
    if run_dir is None:
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(run_dir.read_spec().config)  # the values as the schema reads them
    earlier = read_events(run_dir.events_file)  # a resumed run's: their final event is not this attempt's
    after_seq = earlier[-1]["seq"] if earlier else 0
    try:
        failure = _fit(run_dir, cfg)
    except Exception as exc:  # Ray could not start or reach the cluster: the run never began
        failure = (f"Ray could not run the workers: {type(exc).__name__}: {exc}",
                   "check TUNEFORGE_RAY_ADDRESS and that the cluster has the resources_per_worker asked for")
    final = next((e for e in reversed(read_events(run_dir.events_file, after_seq=after_seq))
                  if e["type"] in FINAL_EVENT_TYPES), None)
    if final is not None:
        return EXIT_FAILED if final["type"] == "failed" else EXIT_OK
    from tuneforge.engine.ray_failures import write_failure

    write_failure(run_dir, failure)
    return EXIT_FAILED


def _ask_workers_to_stop(run_dir: RunDir) -> None:
    """Workers on other nodes get no signal from here: they read the STOP file at their next step end."""
    log.info("stop requested: the workers finish their step, save and stop")
    run_dir.stop_file.write_text("stop\n", encoding="utf-8")


def _fit(run_dir: RunDir, cfg: TrainingConfig) -> tuple[str, str] | None:
    """Train; None when every worker returned, else (error, hint) of the failure."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from tuneforge.engine.ray_failures import ReportToRunDir, clear_reports

    clear_reports(run_dir)
    address = os.environ.get("TUNEFORGE_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, log_to_driver=False, **(cfg.ray_init_kwargs or {}))
    for signum in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs handlers that exit at once
        signal.signal(signum, lambda *_: _ask_workers_to_stop(run_dir))
    resources = dict(cfg.resources_per_worker or {"CPU": 1.0})  # the planner fills {"GPU": 1} on GPU hosts
    scaling = ScalingConfig(num_workers=cfg.ray_num_workers or 1, use_gpu=bool(resources.get("GPU")),
                            resources_per_worker=resources, placement_strategy=cfg.placement_strategy)
    # max_failures 0: a restarted worker group would start the run over; the service resumes it from a checkpoint
    trainer = TorchTrainer(_train_worker, train_loop_config={"run_dir": str(run_dir.path)}, scaling_config=scaling,
                           run_config=RunConfig(name=f"tuneforge-{run_dir.path.name}",
                                                storage_path=str(run_dir.path / "ray"),
                                                failure_config=FailureConfig(max_failures=0),
                                                callbacks=[ReportToRunDir(str(run_dir.path))]))
    failure = _fit_until_reported(trainer, run_dir)
    if failure is None or not failure[0].startswith("a Ray worker was lost"):
        ray.shutdown()  # after a lost worker the job's end (this process exiting) frees the cluster instead
    return failure


def _fit_until_reported(trainer: Any, run_dir: RunDir) -> tuple[str, str] | None:
    """trainer.fit() in a thread; once the controller has reported a failure, waits at most REPORT_GRACE_S more."""
    from tuneforge.engine.ray_failures import controller_report, describe

    outcome: list[tuple[str, str] | None] = []

    def fit() -> None:
        try:
            result = trainer.fit()
            outcome.append(None if result.error is None else describe(str(result.error)))
        except Exception as exc:  # TrainingFailedError and friends: a worker died or raised
            log.info("Ray reported: %s", exc)
            outcome.append(describe(str(exc)))

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if thread.is_alive() and (report := controller_report(run_dir)) is not None:
            thread.join(REPORT_GRACE_S)
            return outcome[0] if outcome else report
    return outcome[0]


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the worker's own run, with the rank Ray gave it (RANK / WORLD_SIZE are set)."""
    from tuneforge.engine.callbacks import StopRequest
    from tuneforge.engine.ray_failures import FailureHeldBack
    from tuneforge.engine.run import EXIT_OK as WORKER_OK
    from tuneforge.engine.run import NullEventWriter, configure_logging, run_worker

    run_dir = RunDir(Path(loop_config["run_dir"]))
    rank = int(os.environ.get("RANK", "0"))
    os.chdir(run_dir.path)  # relative paths in the spec resolve as for a local worker (cwd = run directory)
    configure_logging(run_dir, rank)
    log.info("Ray worker rank %d of %s: pid %d on %s", rank, os.environ.get("WORLD_SIZE"), os.getpid(),
             _node_address())
    events: Any = FailureHeldBack(run_dir) if rank == 0 else NullEventWriter()
    code = run_worker(run_dir, events, StopRequest(run_dir.stop_file))
    if code != WORKER_OK:  # Ray then ends the other workers instead of leaving them in a collective
        raise RuntimeError(f"worker rank {rank} failed (exit {code}); its report is in the run directory")


def _node_address() -> str:
    import ray

    return str(ray.util.get_node_ip_address())


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # not sys.exit: after a lost worker, Ray's threads would hold the exit while it cleans up
