"""pissa_convert: the saved adapter is a plain LoRA adapter that, on the ORIGINAL base model, is the trained model."""

from __future__ import annotations

import json

import torch

from tests.integration.engine.conftest import base_config
from tuneforge.engine.callbacks import StopRequest
from tuneforge.rundir import EventWriter, RunDir, read_events
from tuneforge.schemas.run_spec import RunSpec


def _train_keeping_the_model(run_path, config):
    """The worker's run_training, step by step, so the test still holds the trained model in memory."""
    from tuneforge.engine.precision import choose_precision
    from tuneforge.engine.training import _prepare, _train
    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(config)
    precision = choose_precision(cfg)
    prepared = _prepare(cfg, None, precision)
    run_dir = RunDir(run_path).create(RunSpec(config=config))
    outcome = _train(cfg, run_dir, EventWriter(run_dir.events_file), StopRequest(), precision, prepared, None)
    return outcome, prepared.model, read_events(run_dir.events_file)


def test_converted_pissa_adapter_reproduces_the_trained_model_on_the_original_base(tmp_path, tiny_model_dir,
                                                                                    memorise_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=3, pissa_init=True,
                         pissa_iter=2, pissa_convert=True, learning_rate=1e-2)
    outcome, trained, events = _train_keeping_the_model(tmp_path / "run", config)
    assert outcome.status == "completed", events[-1]

    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert adapter["init_lora_weights"] is True and adapter["r"] == 2 * config["lora_rank"], adapter
    input_ids = torch.randint(10, 500, (2, 40), generator=torch.Generator().manual_seed(0))
    trained.eval()
    with torch.no_grad():
        expected = trained(input_ids=input_ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        untrained = base(input_ids=input_ids).logits
        converted = PeftModel.from_pretrained(base, tmp_path / "out").eval()
        got = converted(input_ids=input_ids).logits
    assert (expected - untrained).abs().max() > 1e-3  # training really moved the model
    assert (got - expected).abs().max() < 1e-4


def test_without_convert_the_pissa_adapter_is_saved_as_trained(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=1, pissa_init=True,
                         pissa_iter=2, pissa_convert=False)
    outcome, _, events = _train_keeping_the_model(tmp_path / "run", config)
    assert outcome.status == "completed", events[-1]
    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert adapter["init_lora_weights"] == "pissa_niter_2" and adapter["r"] == config["lora_rank"]
    assert not (tmp_path / "run" / "pissa_init").exists()
