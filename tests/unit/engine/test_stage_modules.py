"""The stage table and engine/stages/ cannot drift: every engine-supported stage has its module, and every module
trains a stage the table marks engine-supported, through the same interface."""

from __future__ import annotations

import inspect

import pytest

from tuneforge.engine.errors import NotYetSupported
from tuneforge.engine.stages import StageModule, stage_module, stage_module_names
from tuneforge.schemas.stages import STAGES, SUPPORTED_STAGES

SUPPORTED = [name for name, stage in STAGES.items() if stage.engine_supported]
INTERFACE = ("prepare_data", "build_trainer", "extra_metrics")


@pytest.mark.parametrize("name", SUPPORTED)
def test_every_engine_supported_stage_has_a_module(name):
    module = stage_module(name)
    assert module.STAGE is STAGES[name]
    assert module.__name__.rsplit(".", 1)[-1] == name  # found by its file name


@pytest.mark.parametrize("name", stage_module_names())
def test_every_module_trains_an_engine_supported_stage(name):
    assert name in STAGES, f"engine/stages/{name}.py is no stage of schemas.stages.STAGES"
    assert STAGES[name].engine_supported, f"engine/stages/{name}.py exists but the table says engine_supported=False"


def test_the_modules_are_exactly_the_supported_stages():
    assert stage_module_names() == sorted(SUPPORTED) == sorted(SUPPORTED_STAGES)


@pytest.mark.parametrize("name", SUPPORTED)
def test_every_module_has_the_stage_interface(name):
    module = stage_module(name)
    for function in INTERFACE:
        expected = inspect.signature(getattr(StageModule, function))
        got = inspect.signature(getattr(module, function))
        # The protocol's methods take self; a module's functions are the same without it.
        assert list(got.parameters) == [p for p in expected.parameters if p != "self"], (name, function)


def test_a_stage_the_engine_does_not_run_is_refused_with_the_supported_ones():
    with pytest.raises(NotYetSupported, match="stage 'nonsense' is not yet supported") as caught:
        stage_module("nonsense")
    assert all(supported in caught.value.hint for supported in SUPPORTED_STAGES)
