"""`trust_remote_code`: a model whose repository brings its own Python code loads only when it is trusted, and then
with that code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tuneforge.engine.models import load_model
from tuneforge.engine.precision import Precision
from tuneforge.modelref import ModelSource
from tuneforge.schemas import parse_training_config

CONFIG_CODE = '''
from transformers import LlamaConfig


class ForgeLlamaConfig(LlamaConfig):
    model_type = "forge-llama"
'''
MODEL_CODE = '''
from transformers import LlamaForCausalLM

from .configuration_forge import ForgeLlamaConfig


class ForgeLlamaForCausalLM(LlamaForCausalLM):
    config_class = ForgeLlamaConfig
'''


def _custom_code_model(tiny_model_dir: Path, target: Path) -> Path:
    shutil.copytree(tiny_model_dir, target)
    (target / "configuration_forge.py").write_text(CONFIG_CODE, encoding="utf-8")
    (target / "modeling_forge.py").write_text(MODEL_CODE, encoding="utf-8")
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="forge-llama", architectures=["ForgeLlamaForCausalLM"], auto_map={
        "AutoConfig": "configuration_forge.ForgeLlamaConfig",
        "AutoModelForCausalLM": "modeling_forge.ForgeLlamaForCausalLM"})
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def test_remote_code_runs_only_when_trusted(tiny_model_dir, tmp_path):
    model_dir = _custom_code_model(tiny_model_dir, tmp_path / "custom")
    source = ModelSource(str(model_dir))

    def load(trust: bool):
        cfg = parse_training_config({"model_name_or_path": str(model_dir), "trust_remote_code": trust})
        return load_model(cfg, source, Precision("fp32", "cpu"))

    with pytest.raises(Exception, match="trust_remote_code"):
        load(False)
    assert type(load(True)).__name__ == "ForgeLlamaForCausalLM"
