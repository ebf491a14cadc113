"""Many task rows written straight into the store (no training): what the page-work test and bench/console_bench.py
render the console against. Every 10th task is running, the rest have ended; each has a config, a command, a few
checkpoints and, for the first ones, a loss curve."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert

from tuneforge.store import Checkpoint, Database, Experiment, MetricPoint, Task

STATUSES = ["running"] + ["completed"] * 6 + ["failed", "stopped", "completed"]
CURVE_TASKS = 5  # the first tasks get a 200-step loss / lr curve and evaluation points
CURVE_STEPS = 200


def seed_tasks(db: Database, home: Path, count: int) -> list[int]:
    """Inserts `count` tasks (ids 1..count, newest = highest id) and returns their ids."""
    now = time.time()
    with db.session() as session:
        experiment = Experiment(name="speed", description="", owner_id=None, base_model="bundled", template="chatml",
                                finetuning_type="lora", stage="sft", dataset="identity", created_at=now)
        session.add(experiment)
        session.flush()
        experiment_id = experiment.id
    tasks = []
    for i in range(count):
        status = STATUSES[i % len(STATUSES)]
        run_dir = home / "runs" / f"task-{i + 1}"
        tasks.append({
            "name": f"task-{i:05d}", "description": f"seeded task {i}", "owner_id": i % 20,
            "experiment_id": experiment_id if i % 4 == 0 else None, "status": status,
            "progress": 42.0 if status == "running" else 100.0, "base_model": "bundled", "dataset": "identity",
            "output_path": str(home / "outputs" / f"task-{i:05d}"), "stage": "sft", "finetuning_type": "lora",
            "training_args": {"template": "chatml", "learning_rate": 1e-4 * (1 + i % 3), "lora_rank": 8 * (1 + i % 2),
                              "num_train_epochs": 3, "model_name_or_path": "bundled", "dataset": "identity"},
            "auto_values": [], "gpu_config": {}, "devices": [0], "device_count": 1,
            "log_path": str(run_dir / "train.log"), "run_dir": str(run_dir),
            "command": ["python", "-m", "tuneforge.engine.run", str(run_dir)],
            "metrics": {"train_loss": 1.0 + i % 7 / 10, "eval_loss": 1.2}, "created_at": now - count + i,
            "started_at": now - count + i + 1, "ended_at": None if status == "running" else now - count + i + 60,
            "step": 42 if status == "running" else 100, "total_steps": 100, "tokens_trained": 123456 + i,
            "tokens_per_second": 190.0, "eta_s": 300.0 if status == "running" else None, "loss": 1.1,
            "last_seq": CURVE_STEPS, "resume_requested": False,
        })
    with db.engine.begin() as connection:
        for start in range(0, count, 2000):
            connection.execute(insert(Task), tasks[start:start + 2000])
        checkpoints = [{"task_id": task_id, "step": step, "created_at": now,
                        "path": str(home / "runs" / f"task-{task_id}" / f"checkpoint-{step}")}
                       for task_id in range(1, count + 1) for step in (50, 100)]
        connection.execute(insert(Checkpoint), checkpoints)
        points = []
        for task_id in range(1, min(count, CURVE_TASKS) + 1):
            for step in range(1, CURVE_STEPS + 1):
                points.append({"task_id": task_id, "seq": len(points), "time": now, "kind": "train", "step": step,
                               "epoch": step / 70,
                               "loss": 2.0 / (1 + step / 50), "learning_rate": 1e-4 * (1 - step / CURVE_STEPS),
                               "tokens": step * 512, "eval_loss": None})
                if step % 20 == 0:
                    points.append({"task_id": task_id, "seq": len(points), "time": now, "kind": "eval", "step": step,
                                   "epoch": step / 70, "loss": None, "learning_rate": None, "tokens": None,
                                   "eval_loss": 2.2 / (1 + step / 60)})
        connection.execute(insert(MetricPoint), points)
    return list(range(1, count + 1))


def console_pages(ids: list[int]) -> list[str]:
    """Every console page that lists or shows tasks, against the ids seed_tasks returned."""
    newest, running = ids[-1], ids[0]  # task-00000 (id 1) is running, with a loss curve
    return [
        "/console/tasks", "/console/tasks?page=25", "/console/tasks?status=running", "/console/tasks?q=task-009",
        "/console/tasks?experiment=1", "/console/tasks/rows?status=running", "/console/tasks/new",
        f"/console/tasks/new?copy={newest}", f"/console/tasks/{running}", f"/console/tasks/{running}/live",
        f"/console/tasks/{newest}", f"/console/compare?ids={ids[0]},{ids[1]},{ids[2]}", "/console/compare",
        "/console/datasets", "/console/models", "/console/deployments", "/console/chat", "/console/system",
    ]
