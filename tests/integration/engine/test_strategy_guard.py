"""The worker refuses to train under another strategy than the one asked for. Under torchrun on CPU devices
transformers quietly trains with plain DDP when FSDP is asked for; the guard turns that into a failure that says
so, before the first step."""

from __future__ import annotations

import pytest

from tests.integration.engine.conftest import base_config
from tests.integration.engine.test_ddp_cpu import finish, launch_two_ranks
from tuneforge.rundir import read_events

pytestmark = pytest.mark.slow


def test_fsdp_that_the_trainer_does_not_take_up_fails_before_training(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", fsdp="full_shard")
    worker = launch_two_ranks(tmp_path / "run", config)
    assert finish(worker, tmp_path / "run") != 0
    events = read_events(tmp_path / "run" / "events.jsonl")
    final = events[-1]
    assert final["type"] == "failed", final
    assert "fsdp: full_shard was not taken up" in final["error"] and "CUDA" in final["hint"]
    assert not [e for e in events if e["type"] == "progress"]  # not one step under the wrong strategy
