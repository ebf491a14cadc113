"""Process-wide settings: one object, from TUNEFORGE_* environment variables (and an optional config file)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where tuneforge keeps its state. Every path defaults to a folder under `home` (~/.tuneforge)."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", env_file=None, extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".tuneforge")
    model_cache: Path | None = Field(
        default=None, description="Converted models (e.g. the bundled GGUF as safetensors). Default: HOME/models."
    )
    runs_dir: Path | None = Field(default=None, description="Run directories of tasks. Default: HOME/runs.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL. Default: SQLite in HOME.")
    outputs_dir: Path | None = Field(default=None, description="Default parent of task outputs. Default: HOME/outputs.")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders task outputs, datasets and models given by path must lie in (besides HOME). "
        "JSON list in the environment, e.g. TUNEFORGE_ALLOWED_ROOTS='[\"/data\", \"/output\"]'.",
    )
    cpu_slots: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 1) // 2), ge=1,
                           description="Training slots on a host without GPUs (tasks run one per slot).")
    stop_grace_s: float = Field(default=60.0, gt=0, description="Seconds a stopping worker gets before it is killed.")
    poll_interval_s: float = Field(default=0.5, gt=0, description="How often the scheduler reads the run directories.")
    max_json_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024,
                                     description="Largest JSON request body; larger ones are answered 413.")
    max_upload_bytes: int = Field(default=10 * 1024 * 1024 * 1024, ge=1024,
                                  description="Largest multipart upload (dataset files); larger ones are answered 413.")
    max_json_keys: int = Field(default=10_000, ge=100, description="Most object keys in one JSON request body, "
                               "counted before it is parsed; more are answered 413.")
    max_training_args: int = Field(default=500, ge=10, description="Most keys in trainingArgs (and gpuConfig).")
    max_json_depth: int = Field(default=8, ge=2, description="Deepest nesting of trainingArgs and gpuConfig values.")
    max_description_chars: int = Field(default=10_000, ge=100, description="Longest description of any resource.")
    auth: bool = Field(default=True, description="Require an API key (Bearer) on every request. Off: everyone who "
                       "reaches the port acts as the local admin, so the server then listens on loopback only.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers to besides localhost / 127.0.0.1 / ::1 (and the address it is "
        "bound to): a request with any other Host header is refused, so a web page cannot reach the API through DNS "
        "rebinding. Entries like '*.example.com' work; '*' answers every name.")
    on_demand_memory_bytes: int = Field(
        default=4 * 1024**3, ge=0,
        description="Memory all models served on demand (a registered model named in /v1/chat/completions with no "
        "deployment) may take together, in bytes; before one more is loaded, the least recently used idle ones are "
        "unloaded to stay under it. Each model counts as an estimate: its weights' size × a factor, plus its serving "
        "process's runtime (service/models/on_demand.py). 0 turns serving on demand off.")
    on_demand_idle_s: float = Field(
        default=900.0, gt=0,
        description="Seconds without a request after which a model served on demand is unloaded (explicit "
        "deployments never are).")
    on_demand_start_timeout_s: float = Field(
        default=300.0, gt=0,
        description="Seconds the first request to a model served on demand waits for its serving process to load; "
        "past it the process is stopped and the request answered 503 with its log's last lines.")
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1024,
                                description="Largest file uploaded through OpenAI's Files API (/v1/files), as OpenAI "
                                "limits fine-tuning files; larger ones are answered 413 and nothing is kept.")
    ray_address: str | None = Field(
        default=None, description="The Ray cluster tasks with ray_num_workers run on (ray://host:10001 or "
        "host:6379). Unset: each such task starts a Ray of its own on this host. Run directories and outputs must be "
        "on storage every node sees at the same path.")
    kubernetes_image: str | None = Field(
        default=None, description="Run tasks that ask for the kubernetes executor as Kubeflow Trainer TrainJobs with "
        "this container image (tuneforge and torch installed, torchrun on PATH). Unset: no kubernetes executor.")
    kubernetes_pvc: str | None = Field(
        default=None, description="The PersistentVolumeClaim holding the tuneforge home; every pod mounts it at the "
        "home's path, so run directories and outputs mean the same files on the server and on every node.")
    kubernetes_gpus: bool = Field(
        default=True, description="The cluster's training nodes have NVIDIA GPUs: each pod asks for gpu_count of "
        "them (nvidia.com/gpu). Off: gpu_count CPU processes per pod.")
    kubernetes_namespace: str = Field(default="default", description="Namespace TrainJobs are created in.")
    kubernetes_runtime: str = Field(
        default="torch-distributed", description="The ClusterTrainingRuntime TrainJobs use (one with "
        "backoffLimit 0 and restartPolicy Never suits: a failed rank fails the task, which resumes from a checkpoint).")
    kubernetes_cpu: str | None = Field(default=None, description="CPU per node, a Kubernetes quantity (\"16\").")
    kubernetes_memory: str | None = Field(default=None, description="Memory per node (\"64Gi\").")
    kubernetes_unschedulable_timeout_s: float | None = Field(
        default=900.0, gt=0, description="A pod the cluster cannot place for this long fails the task with the "
        "scheduler's reason; null waits forever.")
    host: str = "127.0.0.1"
    port: int = 8321

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tuneforge.db'}"

    @property
    def outputs_path(self) -> Path:
        return self.outputs_dir or self.home / "outputs"

    @property
    def roots(self) -> list[Path]:
        """Every folder user-given paths may point into: HOME (runs, outputs, models) plus the configured ones."""
        return [self.home.expanduser().resolve(), *(Path(r).expanduser().resolve() for r in self.allowed_roots)]

    @property
    def reserved_paths(self) -> list[Path]:
        """The platform's own folders: a task may never write its output into one of them (a task output is
        deleted with its model, and would take the registry or another run with it)."""
        home = self.home.expanduser().resolve()
        own = [home / name for name in ("datasets", "deployments", "evaluations", "exported", "exports", "files",
                                        "registry")]
        return [*own, self.models_path.expanduser().resolve(), self.runs_path.expanduser().resolve()]

    @property
    def local_key_file(self) -> Path:
        """The local admin's API key, written (mode 0600) when the database gets its first user; the CLI on this
        machine reads it, so a local user needs no extra step."""
        return self.home / "local-admin.key"

    @property
    def models_path(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def runs_path(self) -> Path:
        return self.runs_dir or self.home / "runs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
