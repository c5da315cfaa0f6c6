"""The float-layer search keeps float the fewest layers that bring the score within budget.

The probe is a stand-in whose "model" is the set of layers made float and whose score is
a known function of it, so the expected choice is computed independently."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from centernet.sensitivity import SearchConfig, search_float_layers

FLOAT = "float model"


@dataclass
class ScoredProbe:
    effects: dict[str, float]  # score gained when that layer is float
    config: SearchConfig
    base: float = 0.80
    scored: list[frozenset] = field(default_factory=list)
    metric = "stand-in"

    def detections(self, model):
        return model

    def use_as_reference(self, detections) -> float:
        assert detections == FLOAT
        return 1.0

    def score(self, floats) -> float:
        self.scored.append(floats)
        return self.base + sum(self.effects[name] for name in floats)


def make_float(qdq: frozenset, float_model, names) -> frozenset:
    assert float_model == FLOAT
    return qdq | frozenset(names)


def run(effects: dict[str, float], **config) -> tuple[list[str], ScoredProbe]:
    probe = ScoredProbe(effects, SearchConfig(**config))
    found = search_float_layers(probe, FLOAT, frozenset(), list(effects), make_float)
    return [layer.node for layer in found.chosen], probe


def test_one_sensitive_layer_is_found_and_nothing_else():
    chosen, _ = run({"a": 0.01, "b": 0.195, "c": 0.0, "d": 0.005}, max_drop=0.01)
    assert chosen == ["b"]


def test_layers_are_added_best_first_until_within_budget():
    chosen, probe = run({"a": 0.10, "b": 0.12, "c": 0.0, "d": 0.001}, max_drop=0.01)
    assert chosen == ["b", "a"]  # b alone: 0.92; with a: 1.02
    assert frozenset({"c"}) in probe.scored  # every candidate was measured alone


def test_within_budget_already_means_no_float_layer_and_no_trials():
    chosen, probe = run({"a": 0.1}, max_drop=0.25)
    assert chosen == [] and probe.scored == [frozenset()]


@pytest.mark.parametrize("max_layers", [0, 1, 2])
def test_the_layer_budget_is_a_hard_cap(max_layers):
    effects = {"a": 0.05, "b": 0.04, "c": 0.03, "d": 0.02}
    chosen, _ = run(effects, max_drop=0.0, max_layers=max_layers)
    assert chosen == ["a", "b", "c", "d"][:max_layers]


def test_layers_that_do_not_help_are_never_kept_float():
    chosen, _ = run({"a": -0.01, "b": 0.0}, max_drop=0.0)
    assert chosen == []
