"""One module per training stage: engine/stages/<stage>.py, found by the stage's name.

The stage table (schemas.stages.STAGES) says which stages the engine runs; this package holds their code. There is
no registry to keep in step: a stage's module is the file named after it, and a test checks that the modules here
are exactly the table's engine-supported stages. Modules whose name starts with "_", and base, are shared helpers.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import cast

from tuneforge.engine.errors import NotYetSupported
from tuneforge.engine.stages.base import StageModule, TrainerInputs
from tuneforge.schemas.stages import STAGES, SUPPORTED_STAGES

__all__ = ["StageModule", "TrainerInputs", "stage_module", "stage_module_names"]

_HELPERS = frozenset({"base"})  # and every module whose name starts with "_"


def stage_module(name: str) -> StageModule:
    """The module that trains stage `name`; NotYetSupported for a stage this version does not run."""
    if name not in SUPPORTED_STAGES:  # the planner refuses it first; a hand-written spec.json ends here
        supported = ", ".join(f"{s} ({STAGES[s].label_en})" for s in SUPPORTED_STAGES)
        raise NotYetSupported(f"stage '{name}' is not yet supported by this version of tuneforge",
                              hint=f"supported stages: {supported}")
    return cast(StageModule, importlib.import_module(f"{__name__}.{name}"))


def stage_module_names() -> list[str]:
    """The stage modules present in this package (by file), whatever the table says."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_") and info.name not in _HELPERS)
