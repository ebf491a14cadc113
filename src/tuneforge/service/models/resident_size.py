"""How much memory a registered model takes once a serving process holds it: the on-demand pool's budget counts
this before the process exists (a measured RSS would come too late, and keeps growing as weights are read in)."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modelref import ModelNotFound, locate_model
from tuneforge.modelref.locate import looks_like_hub_id, weight_files
from tuneforge.modelref.shape import ModelShapeError, read_model_shape
from tuneforge.store import RegisteredModel

RUNTIME_BYTES = 400 * 2**20  # a serving process with nothing loaded (python, torch, the server): measured ~370 MiB
WEIGHTS_FACTOR = 1.2  # weights as loaded plus a batch's KV cache and activations
GGUF_BYTES_PER_PARAMETER = 4  # a GGUF model is converted to float32 safetensors before it is served


def resident_bytes(model: RegisteredModel) -> int:
    """The budget's estimate of the model served: RUNTIME_BYTES + its weights (and adapter) × WEIGHTS_FACTOR."""
    weights = weights_bytes(model.model_path or model.source)
    if model.adapter_path:
        weights += _files_bytes(Path(model.adapter_path))
    return RUNTIME_BYTES + int(weights * WEIGHTS_FACTOR)


def weights_bytes(where: str) -> int:
    """The size of a model's weights as the serving process holds them; 0 for a hub model not downloaded yet (its
    size is unknown until it is: the next load counts it)."""
    try:
        source = locate_model(where)
    except ModelNotFound:
        return 0
    if not source.is_local:
        return _hub_cache_bytes(source.path)
    folder = Path(source.path)
    if source.gguf_file:
        try:
            return read_model_shape(folder, source.gguf_file).num_parameters * GGUF_BYTES_PER_PARAMETER
        except ModelShapeError:  # unreadable metadata: the serving process will say why; count the file
            return (folder / source.gguf_file).stat().st_size
    return _files_bytes(folder)


def _files_bytes(folder: Path) -> int:
    """Weight files only: a shard index (*.index.json) names the shards, which are counted themselves."""
    if not folder.is_dir():
        return 0
    return sum(file.stat().st_size for file in weight_files(folder) if file.suffix != ".json")


def _hub_cache_bytes(repo_id: str) -> int:
    if not looks_like_hub_id(repo_id):
        return 0
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    return _files_bytes(Path(config).parent) if isinstance(config, str) else 0
