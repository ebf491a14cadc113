"""Where a model lives: a local directory, a GGUF file, a hub id or the bundled model — found without torch, so the
API can check a task's model before any process starts. Loading the weights is the engine's job."""

from tuneforge.modelref.locate import (
    BUNDLED_NAMES,
    BundledModelMissing,
    ModelNotFound,
    ModelSource,
    bundled_gguf_path,
    check_hub_model,
    is_bundled_name,
    locate_model,
)

__all__ = [
    "BUNDLED_NAMES",
    "BundledModelMissing",
    "ModelNotFound",
    "ModelSource",
    "bundled_gguf_path",
    "check_hub_model",
    "is_bundled_name",
    "locate_model",
]
