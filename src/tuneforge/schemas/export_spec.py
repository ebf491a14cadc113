"""SPEC.json of an export job (`python -m tuneforge.engine.export SPEC.json`): merge an adapter into its base, save
sharded safetensors with a model card, optionally quantize the weights with GPTQ or write a GGUF file, and push to
the Hugging Face Hub."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneforge.schemas.config_errors import ConfigProblem

EXPORT_SPEC_VERSION = 1

ExportDtype = Literal["auto", "float32", "float16", "bfloat16"]
GgufType = Literal["f16", "q8_0", "q4_K_M", "q5_K_M"]
# The `gguf` package writes f16 and q8_0 itself; the K-quants need llama.cpp's own quantizer (llama-cpp-python).
LLAMA_CPP_GGUF_TYPES = ("q4_K_M", "q5_K_M")
GGUF_EXTRA_INSTALL = "pip install 'tuneforge[gguf]'"
GPTQ_EXTRA_INSTALL = "pip install 'tuneforge[gptq]'"
# One scale per this many input columns of a weight (-1: one per output row). 128 is what GPTQ exports and vLLM's
# Marlin kernels use; smaller groups are more accurate and a little larger.
GptqGroupSize = Literal[-1, 32, 64, 128, 256]
# What a GPTQ export reads besides quantization_bit: without it, a value other than the default is refused
GPTQ_SETTINGS = ("quantization_dataset", "quantization_nsamples", "quantization_maxlen", "quantization_group_size")
# Calibration tokens at most: every layer's inputs for all of them are held at once (twice while the next layer's
# are computed), 2^20 tokens × 4096 hidden × 4 bytes = 16 GiB on an 8B model. GPTQ's usual 128 × 2048 is 2^18.
MAX_CALIBRATION_TOKENS = 2**20


class ExportSpec(BaseModel):
    """What to export and where; the job is a pure function of it (it writes only the output dir and its job dir)."""

    model_config = ConfigDict(extra="forbid")

    version: int = EXPORT_SPEC_VERSION
    base_model: str = Field(description="Base model: a local directory, a .gguf file, a hub id, or 'bundled'.")
    adapter_dir: str | None = Field(default=None, description="A LoRA adapter directory (a tuneforge run's output).")
    output_dir: str = Field(description="Folder the exported model is written to (created; must be empty).")
    dtype: ExportDtype = Field(
        default="auto", description="Weights' dtype in the export; auto keeps the base model's own dtype."
    )
    max_shard_size_gb: float = Field(
        default=5.0, gt=0, description="Largest weight file, in GB (10^9 bytes); bigger models are split."
    )
    safe_serialization: bool = Field(default=True, description="Write .safetensors (False: PyTorch .bin files).")
    merge: bool | None = Field(
        default=None, description="Merge the adapter into the base weights (default: yes when an adapter is given)."
    )
    device: Literal["cpu", "auto"] = Field(default="cpu", description="Where merging runs: cpu, or a GPU if any.")
    gguf: GgufType | None = Field(
        default=None, description="Also write a GGUF file for llama.cpp: f16, q8_0, or q4_K_M / q5_K_M (these need "
                                  f"llama-cpp-python: {GGUF_EXTRA_INSTALL})."
    )
    quantization_bit: Literal[4, 8] | None = Field(
        default=None, description="Quantize the linear layers' weights to 4 or 8 bits with GPTQ, calibrated on "
                                  "quantization_dataset (saved in the compressed-tensors format that transformers and "
                                  f"vLLM load; needs {GPTQ_EXTRA_INSTALL})."
    )
    quantization_dataset: str | None = Field(
        default=None, description="Calibration data for quantization_bit: a dataset_info.json key, a .json/.jsonl file "
                                  "or a dataset folder (its train split); chat samples are rendered with the model's "
                                  "chat template."
    )
    quantization_dataset_dir: str = Field(default="data", description="Folder holding dataset_info.json.")
    quantization_nsamples: int = Field(default=128, ge=1, le=4096, description="Calibration samples used.")
    quantization_maxlen: int = Field(default=1024, ge=16, le=32768,
                                     description="Longest calibration sample, in tokens (longer ones are cut).")
    quantization_group_size: GptqGroupSize = Field(
        default=128, description="Input columns sharing one scale; -1: one scale per output row."
    )
    hub_repo_id: str | None = Field(default=None, description="Push the export to this Hugging Face Hub repo.")
    hub_private: bool = Field(default=True, description="Create the hub repo as private.")
    hub_token_env: str = Field(default="HF_TOKEN", description="Environment variable holding the hub token.")
    lineage: dict[str, Any] = Field(
        default_factory=dict, description="Base model, task, checkpoint, dataset version…: copied into the card."
    )
    job_id: str | None = None
    model_id: int | None = Field(default=None, description="The registered model exported (the service's; the job "
                                                            "does not read it).")

    @property
    def merges(self) -> bool:
        return bool(self.adapter_dir) if self.merge is None else self.merge

    @model_validator(mode="after")
    def _check_combination(self) -> ExportSpec:
        if self.merge and not self.adapter_dir:
            raise ValueError("merge: true needs adapter_dir (the LoRA adapter to merge into base_model)")
        if self.gguf and self.adapter_dir and not self.merges:
            raise ValueError("gguf: a GGUF file holds full weights; set merge: true (or leave it unset) to use it")
        if self.quantization_bit is not None:
            self._check_quantization()
        elif given := [name for name in GPTQ_SETTINGS if getattr(self, name) != type(self).model_fields[name].default]:
            raise ValueError(f"{given[0]}: only used by a GPTQ export; set quantization_bit (4 or 8) or leave "
                             f"{', '.join(given)} out")
        if self.hub_repo_id is not None and len(self.hub_repo_id.split("/")) != 2:
            raise ValueError(f"hub_repo_id: '{self.hub_repo_id}' is not 'owner/name'")
        return self

    def _check_quantization(self) -> None:
        if not self.quantization_dataset:
            raise ValueError("quantization_dataset: required with quantization_bit (GPTQ calibrates each layer on "
                             "samples of it; a few hundred samples like the model's real inputs are enough)")
        if self.gguf:
            raise ValueError("gguf: llama.cpp quantizes GGUF files itself; leave quantization_bit empty for a GGUF "
                             "export, or export GGUF and GPTQ separately")
        if self.adapter_dir and not self.merges:
            raise ValueError("merge: GPTQ quantizes full weights; set merge: true (or leave it unset)")
        if not self.safe_serialization:
            raise ValueError("safe_serialization: a GPTQ export is written as safetensors only")
        if (tokens := self.quantization_nsamples * self.quantization_maxlen) > MAX_CALIBRATION_TOKENS:
            raise ValueError(f"quantization_nsamples: {self.quantization_nsamples} samples × "
                             f"{self.quantization_maxlen} tokens = {tokens} calibration tokens, over the "
                             f"{MAX_CALIBRATION_TOKENS} whose activations are held at once; lower "
                             "quantization_nsamples or quantization_maxlen")


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported; finding it does not load llama.cpp's library."""
    return installed("llama_cpp")


def installed(module: str) -> bool:
    """Whether a module can be imported; finding it does not import it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install counts as absent
        return False


def gptq_problem(quantization_bit: int | None) -> ConfigProblem | None:
    """Why this host cannot write a GPTQ export, or None: compressed-tensors writes (and transformers reads) it."""
    if quantization_bit is not None and not installed("compressed_tensors"):
        return ConfigProblem("quantization_bit", "a GPTQ export is saved in the compressed-tensors format, which is "
                                                 f"not installed on this host: {GPTQ_EXTRA_INSTALL}")
    return None


def group_size_problem(group_size: int, input_widths: set[int]) -> ConfigProblem | None:
    """Why a model whose linear layers take these input widths cannot use this GPTQ group size, or None: every
    width must be a whole number of groups."""
    if group_size == -1 or all(w % group_size == 0 for w in input_widths):
        return None
    fits = " or ".join(str(g) for g in (256, 128, 64, 32) if all(w % g == 0 for w in input_widths))
    return ConfigProblem("quantization_group_size", f"{group_size} does not divide this model's layer widths "
                                                    f"({', '.join(map(str, sorted(input_widths)))}); choose "
                                                    f"{fits or '-1 (one scale per row)'}")


def gguf_problem(gguf: str | None) -> ConfigProblem | None:
    """Why this host cannot write this GGUF type, or None. Checked when an export is asked for and again when the
    job starts, both before any compute; not in the spec's validator, so a job stays readable after an uninstall."""
    if gguf in LLAMA_CPP_GGUF_TYPES and not llama_cpp_installed():
        return ConfigProblem("gguf", f"{gguf} is written by llama.cpp's quantizer, and llama-cpp-python is not "
                                     f"installed on this host: {GGUF_EXTRA_INSTALL} (f16 and q8_0 need nothing more)")
    return None
