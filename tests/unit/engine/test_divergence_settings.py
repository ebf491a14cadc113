"""divergence_factor and divergence_patience decide when the guard stops a run (fed logged losses directly)."""

from __future__ import annotations

from types import SimpleNamespace

from tuneforge.engine.callbacks import DivergenceGuard
from tuneforge.engine.trainer import TokenCounter

STEADY = [2.0, 1.9, 1.8, 1.7, 1.7]


def _stops_at(losses: list[float], factor: float, patience: int) -> int | None:
    guard = DivergenceGuard(TokenCounter(), factor=factor, patience=patience, keep_weights=False)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    for step, loss in enumerate(losses, start=1):
        guard.on_log(None, SimpleNamespace(global_step=step), control, logs={"loss": loss, "grad_norm": 1.0})
        if guard.reason is not None:
            return step
    return None


def test_a_higher_factor_tolerates_the_spike():
    spike = [*STEADY, 6.0, 6.0, 6.0, 6.0]  # 3.5× the running level
    assert _stops_at(spike, factor=3.0, patience=3) == len(STEADY) + 3
    assert _stops_at(spike, factor=4.0, patience=3) is None


def test_patience_is_the_number_of_diverging_logs_in_a_row():
    spike = [*STEADY, 9.0, 9.0, 9.0, 9.0, 9.0]
    assert _stops_at(spike, factor=3.0, patience=2) == len(STEADY) + 2
    assert _stops_at(spike, factor=3.0, patience=5) == len(STEADY) + 5
    assert _stops_at([*STEADY, 9.0, 1.7, 9.0, 1.7, 9.0], factor=3.0, patience=2) is None
