"""Evaluation jobs: a registered model — and, for a fine-tuned one, its base, on the same prompts — scored on
a dataset split (eval loss, perplexity, BLEU-4, ROUGE-1/2/L, the request's graders, best and worst samples), run by
`python -m tuneforge.engine.evaluate SPEC.json` in HOME/evaluations/eval-<id>. The row keeps the headline scores;
the whole before / after report is the job's results.json. On a GPU host a running evaluation holds one GPU
(service.runtime.devices); a watcher follows every running one, so its GPU is free again as soon as it ends.

Graders are named (stored graders, by name or id) or given inline (grader objects); `resolve_graders` turns them into
the grader objects the spec carries, so the job is a pure function of its spec and later edits of a stored grader
change no evaluation. Each answer is graded with its dataset row as `item` (see schemas.eval_spec)."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge.data.sources import split_names
from tuneforge.planning.devices import Device
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.config_errors import validation_problems
from tuneforge.schemas.eval_spec import RESULTS_FILE, EvalModel, EvalSpec
from tuneforge.schemas.graders import Grader
from tuneforge.service.errors import Conflict, InvalidInput, get_or_not_found, paging_problems
from tuneforge.service.graders.graders import GraderRef, GraderService
from tuneforge.service.models.job_datasets import job_dataset
from tuneforge.service.models.models import ready_model
from tuneforge.service.runtime.devices import claim_gpus, claiming, job_environment
from tuneforge.service.runtime.jobs import (
    SPEC,
    ended_without_result,
    follow_job,
    is_running,
    launch_job,
    watch_in_background,
)
from tuneforge.service.runtime.processes import create_time, is_same_process, signal_group
from tuneforge.service.views import evaluation_view
from tuneforge.settings import Settings
from tuneforge.store import Database, Evaluation, RegisteredModel
from tuneforge.store.scope import current_actor

log = logging.getLogger(__name__)
FINAL = ("completed", "failed", "stopped")
OPTION_FIELDS = ("split", "max_samples", "max_new_tokens", "cutoff_len", "batch_size", "temperature", "top_p",
                 "compute_loss", "predict", "show_samples")


@dataclass
class EvaluationRequest:
    model_id: int
    dataset: str | None = None  # default: the datasets the model was trained on
    compare_with_base: bool = True  # a fine-tuned model is scored beside its base model
    options: dict[str, Any] | None = None  # EvalSpec fields: split, max_samples, max_new_tokens, …
    graders: Sequence[GraderRef] = field(default_factory=list)  # stored graders' names or ids, or grader objects


class GraderResolver(Protocol):
    """Stored grader names / ids and inline objects → grader objects; InvalidInput naming `field.<index>` for every
    unknown name and invalid object (GraderService.resolve)."""

    def resolve(self, refs: Sequence[GraderRef], field: str = "graders") -> builtins.list[Grader]: ...


class EvaluationService:
    def __init__(self, db: Database, settings: Settings, graders: GraderResolver | None = None,
                 devices: builtins.list[Device] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.root = settings.home / "evaluations"
        self.devices = devices or []  # the host's: on a GPU host each evaluation holds one GPU while it runs
        self.python = sys.executable
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # A stop and the watcher take turns: a pass that read an evaluation as running while a stop killed its
        # process would otherwise record it as failed (ended without a result) over the stop.
        self._changing = threading.Lock()
        # resolving needs only the stored graders, not a judge: a GraderService of its own serves when none is given
        self.graders = graders if graders is not None else GraderService(db, settings)

    def resolve_graders(self, names_or_objects: Sequence[GraderRef]) -> builtins.list[Grader]:
        """The grader objects an evaluation carries in its spec, checked to run on this host."""
        return self.graders.resolve(names_or_objects, "graders") if names_or_objects else []

    def create(self, request: EvaluationRequest) -> dict[str, Any]:
        graders = self.resolve_graders(request.graders)  # before anything is written: a bad name starts nothing
        # One lock and one transaction from reading the ledger to recording the claim: two evaluations (or a
        # deployment) started at once never take the same GPU.
        with claiming(), self.db.session() as session:
            model = ready_model(session, request.model_id)
            dataset, dataset_dir = self._dataset(session, request.dataset, model)
            models = _models_to_score(model, request.compare_with_base)
            spec = _spec(models, dataset, dataset_dir, request.options or {}, graders)
            devices = claim_gpus(session, self.devices, 1, "the evaluation", current_actor())
            row = Evaluation(model_id=model.id, dataset=dataset, split=spec.split, devices=devices,
                             baseline=f"{models[0].label}: {models[0].base_model}" if len(models) > 1 else None,
                             options=spec.model_dump(include=set(OPTION_FIELDS)), created_at=time.time())
            session.add(row)
            session.flush()
            self._launch(row, spec)
            evaluation_id = row.id
        return self.get(evaluation_id)

    def _launch(self, row: Evaluation, spec: EvalSpec) -> None:
        folder = self.root / f"eval-{row.id}"
        folder.mkdir(parents=True, exist_ok=True)
        spec = spec.model_copy(update={"job_id": f"eval-{row.id}"})
        (folder / SPEC).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
        env = job_environment(dict(os.environ), self.devices, row.devices)
        child = launch_job("tuneforge.engine.evaluate", folder, self.python, env)
        self._children[row.id] = child
        row.job_dir, row.pid = str(folder), child.pid
        row.pid_started_at = create_time(child.pid)

    def _dataset(self, session: Session, wanted: str | None, model: RegisteredModel) -> tuple[str, str]:
        """(dataset, dataset_dir) for the job; default: what the model was trained on."""
        names = split_names(wanted) if wanted else list(model.datasets or [])
        if not names:
            raise InvalidInput.of([ConfigProblem("dataset", "required: this model has no training dataset on record "
                                                            "to evaluate on")])
        return job_dataset(session, self.settings, names, "dataset")

    def get(self, evaluation_id: int, with_samples: bool = True) -> dict[str, Any]:
        with self.db.session() as session:
            row = get_or_not_found(session, Evaluation, evaluation_id, "evaluation")
            self._sync(row)
            view = evaluation_view(row)
        if with_samples and view["status"] == "completed":
            view["report"] = _report(Path(view["jobDir"]))
        return view

    def list(self, model_id: int | None = None, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        if problems := paging_problems(page, page_size):
            raise InvalidInput.of(problems)
        query = select(Evaluation).order_by(Evaluation.id.desc())
        if model_id is not None:
            query = query.where(Evaluation.model_id == model_id)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            rows = list(session.scalars(query.offset((page - 1) * page_size).limit(page_size)))
            for row in rows:
                self._sync(row)
            items = [evaluation_view(r) for r in rows]
        return {"total": total, "items": items}

    def stop(self, evaluation_id: int) -> dict[str, Any]:
        with self._changing, self.db.session() as session:
            row = get_or_not_found(session, Evaluation, evaluation_id, "evaluation")
            self._sync(row)
            if row.status in FINAL:
                raise Conflict(f"evaluation {row.id} is already {row.status}")
            if row.pid and is_same_process(row.pid, row.pid_started_at):
                signal_group(row.pid, signal.SIGKILL)
            self._reap(row.id)
            row.status, row.finished_at, row.message = "stopped", time.time(), "stopped by the user"
        return self.get(evaluation_id, with_samples=False)

    def delete(self, evaluation_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            row = get_or_not_found(session, Evaluation, evaluation_id, "evaluation")
            self._sync(row)
            if row.status == "running":
                raise Conflict(f"evaluation {row.id} is running; stop it first (stopEvaluation)")
            folder = row.job_dir
            session.delete(row)
        if folder and Path(folder).resolve().is_relative_to(self.root.resolve()):
            shutil.rmtree(folder, ignore_errors=True)
        return {"id": evaluation_id, "deleted": True}

    # -- following ---------------------------------------------------------------------------------------------
    def watch(self) -> None:
        """Follows every running evaluation, a previous server's too: a finished one records its result and gives
        its GPU back without waiting for a reader; one whose process is gone without a result is failed."""
        with self._changing, self.db.session() as session:
            for row in session.scalars(select(Evaluation).where(Evaluation.status == "running")):
                try:
                    self._sync(row)
                except Exception:  # one evaluation's damaged folder never stalls the others (or a server start)
                    log.exception("evaluation %s could not be followed this pass", row.id)

    def start_watching(self, interval: float = 1.0) -> None:
        self._thread = watch_in_background("tuneforge-evaluations", interval, self.watch, self._stop)

    def close(self) -> None:
        """Stops the watcher and waits for a pass in progress: nothing of this server acts after it is closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _sync(self, row: Evaluation) -> None:
        """Bring a running row up to date with its job folder (on every read and watch pass; cheap: one small
        file)."""
        if row.status in FINAL or not row.job_dir:
            return
        folder = Path(row.job_dir)
        progress = follow_job(folder, lambda: is_running(self._children.get(row.id), row.pid, row.pid_started_at))
        if progress.final is None and progress.status == "failed":
            row.status, row.finished_at = "failed", time.time()
            row.error_message = ended_without_result("evaluation", folder)
            self._reap(row.id)
            return
        row.stage, row.percentage, row.message = progress.stage, progress.percentage, progress.message
        final = progress.final
        if final is None:
            return
        row.status, row.finished_at = final["type"], time.time()
        self._reap(row.id)
        if final["type"] == "completed":
            row.scores = _headline_scores(folder)
            row.split = str(final.get("split") or row.split)  # the split scored: 'test' falls back to 'valid'
        else:
            row.error_message = " — ".join(filter(None, [final.get("error"), final.get("hint")]))

    def _reap(self, evaluation_id: int) -> None:
        """Collect a finished child's exit status, so no zombie process is left behind."""
        child = self._children.pop(evaluation_id, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def running_for_model(self, session: Session, model_id: int) -> builtins.list[int]:
        rows = session.scalars(select(Evaluation).where(Evaluation.model_id == model_id,
                                                        Evaluation.status == "running"))
        running = []
        for row in rows:
            self._sync(row)
            if row.status == "running":
                running.append(row.id)
        return running

    def job_folders(self, session: Session, model_id: int) -> builtins.list[Path]:
        rows = session.scalars(select(Evaluation.job_dir).where(Evaluation.model_id == model_id))
        return [Path(d) for d in rows if d and Path(d).resolve().is_relative_to(self.root.resolve())]


def _models_to_score(model: RegisteredModel, compare_with_base: bool) -> list[EvalModel]:
    config = model.training_config or {}
    # every model answers through the template and system prompt the fine-tune was trained with: only weights differ
    template, system = config.get("template"), config.get("default_system")
    if model.kind == "base":
        return [EvalModel(label=model.name, base_model=model.source)]
    tuned = (EvalModel(label=model.name, base_model=model.model_path, template=template, system=system)
             if model.model_path else
             EvalModel(label=model.name, base_model=model.source, adapter_dir=model.adapter_path, system=system))
    if not compare_with_base:
        return [tuned]
    label = "base" if model.name != "base" else "base-model"  # labels must differ
    return [EvalModel(label=label, base_model=model.source, template=template, system=system), tuned]


def _spec(models: list[EvalModel], dataset: str, dataset_dir: str, options: dict[str, Any],
          graders: builtins.list[Grader]) -> EvalSpec:
    unknown = sorted(set(options) - set(OPTION_FIELDS))
    if unknown:
        raise InvalidInput.of([ConfigProblem(key, f"unknown option (known: {', '.join(OPTION_FIELDS)})")
                               for key in unknown])
    try:
        return EvalSpec(models=models, dataset=dataset, dataset_dir=dataset_dir, graders=graders, **options)
    except ValidationError as exc:
        raise InvalidInput.of(validation_problems(exc, "options")) from exc


def _headline_scores(folder: Path) -> list[dict[str, Any]]:
    path = folder / RESULTS_FILE
    if not path.is_file():
        return []
    results = json.loads(path.read_text(encoding="utf-8"))
    return [{k: v for k, v in scores.items() if k not in ("best", "worst")} for scores in results.get("models", [])]


def _report(folder: Path) -> dict[str, Any] | None:
    """The before / after report: scores side by side, the change, and the best / worst samples with every model's
    answer to the same prompt."""
    path = folder / RESULTS_FILE
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    samples = {s["index"]: s for s in results.get("samples", [])}
    models = results.get("models", [])
    report: dict[str, Any] = {"models": models, "samples": list(samples.values())}
    if len(models) == 2:
        before, after = models
        report["change"] = {key: round(after[key] - before[key], 4) for key in
                            ("eval_loss", "perplexity", "bleu_4", "rouge_1", "rouge_2", "rouge_l")
                            if before.get(key) is not None and after.get(key) is not None}
        graded = {name: round(after["graders"][name] - mean, 6)
                  for name, mean in (before.get("graders") or {}).items() if name in (after.get("graders") or {})}
        if graded:  # each grader's mean score, fine-tuned minus base
            report["change"]["graders"] = graded
    for scores in models:
        scores["bestSamples"] = [samples[i] for i in scores.get("best", []) if i in samples]
        scores["worstSamples"] = [samples[i] for i in scores.get("worst", []) if i in samples]
    return report
