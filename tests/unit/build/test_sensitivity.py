"""The float-layer search keeps float the fewest layers that bring the score within budget.

The probe is a stand-in whose "model" is the set of layers made float and whose score is
a known function of it, so the expected choice is computed independently."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from centernet.build.sensitivity import SearchConfig, search_float_layers

FLOAT = "float model"


@dataclass
class ScoredProbe:
    effects: dict[str, float]  # score gained when that layer is float
    config: SearchConfig
    base: float = 0.80
    floor: float = 0.0  # the float model's drop under input noise
    overlapping: frozenset = frozenset()  # layers that fix the same error: only the best counts
    scored: list[frozenset] = field(default_factory=list)
    metric = "stand-in"

    def detections(self, model):
        return model

    def use_as_reference(self, detections) -> float:
        assert detections == FLOAT
        return 1.0

    def noise_floor(self, model) -> float:
        assert model == FLOAT
        return self.floor

    def score(self, floats) -> float:
        self.scored.append(floats)
        gains = [self.effects[name] for name in floats if name not in self.overlapping]
        shared = [self.effects[name] for name in floats if name in self.overlapping]
        return self.base + sum(gains) + max(shared, default=0.0)


def make_float(qdq: frozenset, float_model, names) -> frozenset:
    assert float_model == FLOAT
    return qdq | frozenset(names)


def run(
    effects: dict[str, float], floor: float = 0.0, overlapping: str = "", **config
) -> tuple[list[str], ScoredProbe]:
    probe = ScoredProbe(
        effects, SearchConfig(**config), floor=floor, overlapping=frozenset(overlapping)
    )
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


def test_gains_smaller_than_the_noise_floor_are_not_worth_a_float_layer():
    """int8's drop spread over many layers (each helps a little): none beats what input
    noise does to the float model, so none is kept, though the build stays over budget."""
    effects = {"a": 0.004, "b": 0.003, "c": 0.002, "d": 0.001}
    chosen, _ = run(effects, floor=0.005, max_drop=0.0)
    assert chosen == []
    chosen, _ = run(effects, floor=0.0025, max_drop=0.0)
    assert chosen == ["a", "b"]  # only the two above the floor, best first
    chosen, _ = run(effects, floor=0.0, max_drop=0.0)
    assert chosen == ["a", "b", "c", "d"]


def test_one_sensitive_layer_still_beats_the_floor():
    chosen, _ = run({"a": 0.003, "b": 0.19, "c": 0.002}, floor=0.01, max_drop=0.0)
    assert chosen == ["b"]


def test_a_layer_that_helps_alone_but_not_with_the_others_float_is_skipped():
    """a and b fix the same error (together they gain what a gains): b is measured alone
    as helpful, but once a is float it buys nothing, so it stays int8 and c is tried."""
    chosen, _ = run({"a": 0.05, "b": 0.04, "c": 0.02}, overlapping="ab", max_drop=0.0)
    assert chosen == ["a", "c"]
