"""The judge of score_model and label_model graders: this server's own deployments. A grader's `model` names a
deployment (or a registered model that one serves), as `model` does in /v1/chat/completions; the request goes
straight to that deployment's serving process on loopback, not round through this server's gateway."""

from __future__ import annotations

from typing import Any, Protocol

from tuneforge.graders import HttpJudge


class DeploymentRoutes(Protocol):
    """What the judge needs of the deployments (DeploymentService): where `name` is served, and whether it is a
    registered model at all."""

    def route(self, name: str) -> tuple[str, int | None, str] | None: ...

    def is_registered(self, name: str) -> bool: ...


class JudgeUnavailable(RuntimeError):
    """The judge model cannot answer here: not deployed, or not running. The message says what to do; the grader
    scores the sample 0 with it as the reason (graders.JudgeClient: a judge raises on any failure)."""


class DeploymentJudge:
    """A JudgeClient (tuneforge.graders) whose models are this server's deployments."""

    def __init__(self, deployments: DeploymentRoutes) -> None:
        self.deployments = deployments

    def complete(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
        name, port = self._serving(model)
        return HttpJudge(f"http://127.0.0.1:{port}/v1").complete(name, messages, sampling)

    def _serving(self, model: str) -> tuple[str, int]:
        route = self.deployments.route(model)
        if route is None:
            if self.deployments.is_registered(model):
                raise JudgeUnavailable(f"judge model {model!r} is registered but not deployed: deploy it (tuneforge "
                                       "deploy create, or POST /deployments/createDeployment) and run again")
            raise JudgeUnavailable(f"judge model {model!r} is not deployed on this server: deploy a model under that "
                                   "name (tuneforge deploy create), or name a running deployment (tuneforge deploy "
                                   "list) in the grader's model")
        name, port, status = route
        if status != "running" or port is None:
            what = "wait until it is running" if status in ("starting", "restarting") else \
                "start it (tuneforge deploy start, or POST /deployments/startDeployment)"
            raise JudgeUnavailable(f"judge deployment {name!r} is {status}; {what} and run again")
        return name, port
