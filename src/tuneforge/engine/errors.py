"""Errors a worker reports as a `failed` event: what went wrong and what to do, never a bare traceback."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A problem the user can fix (bad model path, unsupported option on this hardware, …)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class NotYetSupported(EngineError):
    pass


class TrainingDiverged(EngineError):
    pass
