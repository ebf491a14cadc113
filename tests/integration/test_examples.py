"""Every shipped example config is a test: each parses and finds its datasets; the smallest train for 2 steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny import build_tiny_llama
from tuneforge.rundir import EventWriter, RunDir, read_events
from tuneforge.schemas import load_config_file, parse_overrides, parse_training_config
from tuneforge.schemas.run_spec import RunSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))


def test_the_expected_examples_ship_and_the_readme_names_each():
    names = {path.name for path in CONFIGS}
    assert {"sft_lora.yaml", "sft_freeze.yaml", "sft_full.yaml", "pt_lora.yaml", "sft_lora_mix.yaml",
            "sft_lora_dir.yaml"} <= names
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"tuneforge train examples/{name}" in readme, name


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_parses_and_its_datasets_resolve(path):
    from tuneforge.cli.training import plan_from_file
    from tuneforge.data.sources import resolve_dataset_sources

    raw, resolved = load_config_file(path)
    config = parse_training_config(raw, source=str(resolved))
    assert config.model_name_or_path == "bundled"
    sources = resolve_dataset_sources(config.dataset, config.dataset_dir, resolved.parent)
    assert sources and all(f.is_file() for s in sources for f in s.files)
    # relative paths resolve against the config's folder, not the working directory
    assert all(EXAMPLES in f.resolve().parents or EXAMPLES.parent / "src" in f.resolve().parents
               for s in sources for f in s.files)
    plan, _ = plan_from_file(path, [])  # the planner's verdict: every record valid, every setting honoured here
    assert plan.dataset is not None and plan.dataset.num_train_samples > 0


def test_the_directory_example_uses_valid_jsonl_for_evaluation():
    from tuneforge.data.sources import resolve_dataset_sources

    raw, resolved = load_config_file(EXAMPLES / "sft_lora_dir.yaml")
    config = parse_training_config(raw)
    (source,) = resolve_dataset_sources(config.dataset, config.dataset_dir, resolved.parent)
    assert [f.name for f in source.files] == ["train.jsonl"] and [f.name for f in source.eval_files] == ["valid.jsonl"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("examples-tiny-llama")
    build_tiny_llama(path)
    return path


@pytest.mark.parametrize("name", ["sft_lora.yaml", "pt_lora.yaml", "sft_freeze.yaml"])
def test_small_example_trains_for_two_steps(tmp_path, tiny_model, name):
    from tuneforge.engine.callbacks import StopRequest
    from tuneforge.engine.run import run_worker

    raw, resolved = load_config_file(EXAMPLES / name)
    raw.update(parse_overrides([f"model_name_or_path={tiny_model}", "max_steps=2", "cutoff_len=64",
                                f"output_dir={tmp_path / 'out'}"]))
    run_dir = RunDir(tmp_path / "run")
    run_dir.create(RunSpec(config=raw, config_dir=str(resolved.parent)))
    code = run_worker(run_dir, EventWriter(run_dir.events_file), StopRequest())
    events = read_events(run_dir.events_file)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    assert events[-1]["step"] == 2
    if "val_size" in raw:  # evaluated once at the end, not once by the Trainer and again by tuneforge
        assert [e["step"] for e in events if e["type"] == "eval"] == [2]
    weights = "adapter_model.safetensors" if "lora" in name else "model.safetensors"
    assert (tmp_path / "out" / weights).is_file()
