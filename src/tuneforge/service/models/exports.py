"""Export jobs: a registered model → merged / sharded safetensors, optionally GPTQ-quantized, GGUF or a hub push, run by
`python -m tuneforge.engine.export SPEC.json` in a job folder under HOME/exports; progress comes from that folder's
events.jsonl and its process from process.json, so a job survives a server restart like a task does (and one that
died meanwhile without a result reads as failed, with its last output)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from tuneforge.data.sources import split_names
from tuneforge.modelref import ModelNotFound, locate_model
from tuneforge.modelref.shape import ModelShapeError, read_model_shape
from tuneforge.planning.paths import confine, output_problem
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.config_errors import validation_problems
from tuneforge.schemas.export_spec import (
    GPTQ_SETTINGS,
    ExportSpec,
    gguf_problem,
    gptq_problem,
    group_size_problem,
)
from tuneforge.service.errors import InvalidInput, NotFound
from tuneforge.service.models.job_datasets import job_dataset
from tuneforge.service.models.models import ModelService, ready_model
from tuneforge.service.runtime.jobs import (
    SPEC,
    ended_without_result,
    follow_job,
    is_running,
    launch_job,
    recorded_process,
)
from tuneforge.settings import Settings
from tuneforge.store import Database, RegisteredModel


class ExportService:
    def __init__(self, db: Database, settings: Settings, models: ModelService) -> None:
        self.db = db
        self.settings = settings
        self.models = models
        self.root = settings.home / "exports"
        self.python = sys.executable
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # A job is listed once its SPEC.json exists, and is found running by its child or process.json: a reader
        # waits while a job between the two is started, rather than reading it as a job that died.
        self._starting = threading.Lock()

    def create(self, model_id: int, options: dict[str, Any]) -> dict[str, Any]:
        """Starts an export job. `options` are ExportSpec's settings (snake_case); a refusal names each field as the
        API's body does (quantizationBit), like every other service error."""
        try:
            return self._create(model_id, options)
        except InvalidInput as exc:
            if not exc.details:
                raise
            raise InvalidInput.of([ConfigProblem(to_camel(d["field"]), d["message"]) for d in exc.details]) from exc

    def _create(self, model_id: int, options: dict[str, Any]) -> dict[str, Any]:
        with self.db.session() as session:
            ready_model(session, model_id, "id")  # an import still copying cannot be exported yet
            if options.get("quantization_bit") is None and (given := [k for k in GPTQ_SETTINGS if k in options]):
                leave = ", ".join(map(to_camel, given))
                raise InvalidInput.of([ConfigProblem(given[0], "only used by a GPTQ export: set quantizationBit "
                                                               f"(4 or 8) or leave {leave} out")])
            if calibration := options.get("quantization_dataset"):  # pinned and confined like a task's dataset
                options["quantization_dataset"], options["quantization_dataset_dir"] = job_dataset(
                    session, self.settings, split_names(calibration), "quantization_dataset")
        model = self.models.get(model_id)
        job_id = f"export-{time.strftime('%Y%m%d-%H%M%S')}-{model_id}-{time.time_ns() % 10**6:06d}"
        path = self._output_dir(options.pop("output_dir", None), f"{model['name']}-{job_id}")
        base = model["modelPath"] or model["baseModel"]
        adapter = model.get("adapterPath")
        try:
            spec = ExportSpec(base_model=base, adapter_dir=adapter, output_dir=str(path), job_id=job_id,
                              model_id=model_id, lineage=model.get("lineage") or {}, **options)
        except ValidationError as exc:
            raise InvalidInput.of(validation_problems(exc)) from exc
        problems = [gguf_problem(spec.gguf), gptq_problem(spec.quantization_bit),
                    _group_size_problem(spec, base)]
        if found := [p for p in problems if p]:
            raise InvalidInput.of(found)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        with self._starting:
            (folder / SPEC).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
            self._children[job_id] = launch_job("tuneforge.engine.export", folder, self.python)
        return self.get(job_id)

    def _output_dir(self, given: str | None, default_name: str) -> Path:
        """Where the export writes: HOME/exported/<model>-<job> by default; a folder the user names must lie in the
        allowed folders and be neither a root itself nor in (or above) the platform's own folders: the export
        writes into it, and a later delete may empty it. A new folder in HOME/exported is fine."""
        exported = self.settings.home.resolve() / "exported"
        if not given:
            return exported / default_name
        path, problem = confine(given, self.settings.roots, "outputDir")
        if path is not None and problem is None and path.parent != exported:
            problem = output_problem(path, self.settings.roots, self.settings.reserved_paths, "outputDir")
        if problem or path is None:
            raise InvalidInput.of([problem or ConfigProblem("outputDir", "not a usable folder")])
        return path

    def get(self, job_id: str) -> dict[str, Any]:
        folder = self.root / job_id
        if not (folder / SPEC).is_file() or "/" in job_id or job_id.startswith("."):
            raise NotFound(f"export job {job_id!r} does not exist", [ConfigProblem("id", "no such export job")])
        spec = ExportSpec.model_validate_json((folder / SPEC).read_text(encoding="utf-8"))
        with self.db.session() as session:  # an export is seen by whoever may see its model
            if session.get(RegisteredModel, spec.model_id) is None:
                raise NotFound(f"export job {job_id!r} does not exist", [ConfigProblem("id", "no such export job")])
        progress = follow_job(folder, lambda: self._running(job_id, folder))
        final = progress.final or {}
        error = final.get("error")
        if progress.final is None and progress.status == "failed":
            error = ended_without_result("export", folder)
        if progress.status != "running" and (child := self._children.pop(job_id, None)) is not None:
            child.poll()  # collect its exit status (or let subprocess reap it later): no zombie is left
        return {"id": job_id, "modelId": spec.model_id, "status": progress.status, "outputDir": spec.output_dir,
                "gguf": spec.gguf, "dtype": spec.dtype, "maxShardSizeGb": spec.max_shard_size_gb,
                "quantization": _quantization(spec),
                "stage": progress.stage, "percentage": progress.percentage, "message": progress.message,
                "files": final.get("files"), "sizes": final.get("sizes"), "error": error,
                "hint": final.get("hint")}

    def _running(self, job_id: str, folder: Path) -> bool:
        """This server's child, or the process a previous server started (process.json). A folder without that
        record (an export started before jobs recorded their process) cannot be found again: it counts as ended."""
        with self._starting:
            child = self._children.get(job_id)
        return is_running(child, *recorded_process(folder))

    def list(self) -> dict[str, Any]:
        jobs = sorted((p.name for p in self.root.glob("export-*") if (p / SPEC).is_file()), reverse=True)
        items = []
        for job in jobs:
            with contextlib.suppress(NotFound):  # another user's
                items.append(self.get(job))
        return {"total": len(items), "items": items}


def _group_size_problem(spec: ExportSpec, base_model: str) -> ConfigProblem | None:
    """Checked on the model's shape where it can be read here (a folder, the bundled or another GGUF model); the
    job checks every layer it loads anyway."""
    if spec.quantization_bit is None:
        return None
    try:
        source = locate_model(base_model)
        if not source.is_local:
            return None
        shape = read_model_shape(Path(source.path), source.gguf_file)
    except (ModelNotFound, ModelShapeError, OSError):
        return None  # the job says why when it loads the model
    return group_size_problem(spec.quantization_group_size, {lin.in_features for lin in shape.layer_linears()})


def _quantization(spec: ExportSpec) -> dict[str, Any] | None:
    if spec.quantization_bit is None:
        return None
    return {"method": "gptq", "bits": spec.quantization_bit, "groupSize": spec.quantization_group_size,
            "dataset": spec.quantization_dataset, "nsamples": spec.quantization_nsamples,
            "maxlen": spec.quantization_maxlen}
