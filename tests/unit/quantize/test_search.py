"""The float-layer search keeps float the fewest layers that bring the score within budget.

The probe is a stand-in whose "model" is the set of layers made float and whose score,
output error and sampling noise are known functions of it, so the expected choice is
computed independently."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from centernet.quantize.config import SearchConfig
from centernet.quantize.search import (
    INT8_HOLDS,
    MET,
    NOT_MET,
    WITHIN_NOISE,
    LayerGain,
    search_float_layers,
    search_reason,
)
from centernet.quantize.search_scoring import Trial

FLOAT = "float model"


@dataclass
class ScoredProbe:
    effects: dict[str, float]  # score gained when that layer is float
    config: SearchConfig
    base: float = 0.80
    sd: float = 0.0  # the sampling noise of any drop on its images
    overlapping: frozenset = frozenset()  # layers that fix the same error: only the best counts
    errors: dict[str, float] | None = None  # output error each layer adds in int8 (else effects)
    scored: list[frozenset] = field(default_factory=list)
    metric = "stand-in"
    tensors = [None] * 8  # the images it stands for
    reference_trial = Trial([])

    def detections(self, model):
        return model

    def use_as_reference(self, detections) -> float:
        assert detections == FLOAT
        return 1.0

    def drop_noise(self, reference, trial) -> float:
        return self.sd

    def score(self, floats) -> float:
        self.scored.append(floats)
        gains = [self.effects[name] for name in floats if name not in self.overlapping]
        shared = [self.effects[name] for name in floats if name in self.overlapping]
        return self.base + sum(gains) + max(shared, default=0.0)

    def error(self, floats) -> float:
        errors = self.errors if self.errors is not None else self.effects
        fixed = [errors[n] for n in floats if n not in self.overlapping]
        shared = max((errors[n] for n in floats if n in self.overlapping), default=0.0)
        return sum(errors.values()) - sum(fixed) - shared + 0.001


def make_float(qdq: frozenset, float_model, names) -> frozenset:
    assert float_model == FLOAT
    return qdq | frozenset(names)


def run(
    effects: dict[str, float],
    sd: float = 0.0,
    overlapping: str = "",
    check: ScoredProbe | None = None,
    errors: dict[str, float] | None = None,
    **config,
):
    """The layers chosen, the probe, and the whole result."""
    probe = ScoredProbe(
        effects,
        SearchConfig(**config),
        sd=sd,
        overlapping=frozenset(overlapping),
        errors=errors,
    )
    found = search_float_layers(probe, FLOAT, frozenset(), list(effects), make_float, check=check)
    return [layer.node for layer in found.chosen], probe, found


def test_one_sensitive_layer_is_found_and_nothing_else():
    chosen, _, found = run({"a": 0.01, "b": 0.195, "c": 0.0, "d": 0.005}, max_drop=0.01)
    assert chosen == ["b"] and found.outcome == MET


def test_layers_are_added_by_the_output_error_they_remove_until_within_budget():
    chosen, probe, _ = run({"a": 0.10, "b": 0.12, "c": 0.0, "d": 0.001}, max_drop=0.01)
    assert chosen == ["b", "a"]  # b alone: 0.92; with a: 1.02
    assert frozenset({"c"}) in probe.scored  # every candidate was measured alone


def test_within_budget_already_means_no_float_layer_and_no_trials():
    chosen, probe, found = run({"a": 0.1}, max_drop=0.25)
    assert chosen == [] and probe.scored == [frozenset()] and found.outcome == INT8_HOLDS


@pytest.mark.parametrize("max_layers", [0, 1, 2])
def test_the_layer_budget_is_a_hard_cap(max_layers):
    effects = {"a": 0.05, "b": 0.04, "c": 0.03, "d": 0.02}
    chosen, _, _ = run(effects, max_drop=0.0, max_layers=max_layers)
    assert chosen == ["a", "b", "c", "d"][:max_layers]


def test_layers_that_do_not_lower_the_error_are_never_kept_float():
    chosen, _, found = run({"a": -0.01, "b": 0.0}, max_drop=0.0)
    assert chosen == [] and found.outcome == NOT_MET


def test_small_gains_that_add_up_are_kept():
    """int8's drop spread over many layers, each gaining too little alone to be seen in the
    score of a few images, but each removing output error: together they close the gap."""
    effects = {"a": 0.04, "b": 0.03, "c": 0.02, "d": 0.01, "e": 0.0001}
    chosen, _, found = run(effects, max_drop=0.1, errors={**effects, "e": 0.0001})
    assert chosen == ["a", "b", "c", "d"] and found.outcome == MET  # 0.90: within 0.1
    assert found.final == pytest.approx(0.90)


def test_layers_are_tried_by_how_much_output_error_they_remove():
    """The score alone is too coarse to rank small effects; the output error orders them."""
    effects = {"a": 0.001, "b": 0.002, "c": 0.05}
    _, _, found = run(effects, errors={"a": 0.5, "b": 0.1, "c": 0.3}, max_drop=0.0)
    assert [layer.node for layer in found.ranked] == ["a", "c", "b"]
    cuts = [layer.error_cut for layer in found.ranked]
    assert cuts == sorted(cuts, reverse=True) and cuts[-1] > 0


def test_a_layer_that_removes_too_little_error_is_not_kept():
    chosen, _, _ = run(
        {"a": 0.05, "b": 0.01}, errors={"a": 0.5, "b": 0.005}, max_drop=0.0, min_error_cut=0.02
    )
    assert chosen == ["a"]  # b removes 1 % of int8's output error: not worth its speed


def test_a_drop_within_its_sampling_noise_needs_no_float_layer():
    chosen, probe, found = run({"a": 0.1}, sd=0.15, max_drop=0.01, noise_sigmas=2.0)
    assert chosen == [] and found.outcome == WITHIN_NOISE and found.met
    assert probe.scored == [frozenset()]  # decided before any trial


def test_the_search_stops_where_the_drop_left_is_within_noise_on_held_out_images():
    effects = {"a": 0.03, "b": 0.02, "c": 0.01}
    check = ScoredProbe(effects, SearchConfig(), base=0.95, sd=0.011)
    chosen, _, found = run(effects, max_drop=0.0, check=check)
    # held out: drop 0.05 (> 2 sd) before, 0.02 after a: within 2 sd
    assert chosen == ["a"] and found.outcome == WITHIN_NOISE and found.met
    assert found.check_final == pytest.approx(0.98) and found.drop == pytest.approx(0.02)


def test_the_budget_is_judged_on_the_held_out_images():
    effects = {"a": 0.15, "b": 0.04, "c": 0.01}
    check = ScoredProbe({"a": 0.05, "b": 0.03, "c": 0.02}, SearchConfig(), base=0.90)
    chosen, _, found = run(effects, max_drop=0.01, check=check)
    # the probe is within budget after a and b (0.99), the held-out images only after c
    assert chosen == ["a", "b", "c"] and found.outcome == MET
    assert found.check_final == pytest.approx(1.0)


def test_int8_within_budget_on_held_out_images_needs_no_search():
    check = ScoredProbe({"a": 0.1}, SearchConfig(), base=0.999)
    chosen, probe, found = run({"a": 0.1}, max_drop=0.002, check=check)
    assert chosen == [] and found.outcome == INT8_HOLDS and probe.scored == [frozenset()]


def test_layers_that_do_not_help_on_held_out_images_are_given_back():
    """What the probe images liked does not carry over: a float layer for nothing costs
    speed, so the build stays int8 and says the budget is not met."""
    check = ScoredProbe({"a": 0.0, "b": 0.0}, SearchConfig(), base=0.90, errors={"a": 0, "b": 0})
    chosen, _, found = run({"a": 0.05, "b": 0.04}, max_drop=0.0, check=check)
    assert chosen == [] and found.outcome == NOT_MET and not found.met
    assert found.check_final == found.check_int8 == pytest.approx(0.90)


def test_a_budget_that_cannot_be_met_says_what_it_reached_and_kept():
    chosen, _, found = run({"a": 0.05, "b": 0.04}, max_drop=0.001, max_layers=1)
    assert chosen == ["a"] and found.outcome == NOT_MET and not found.met
    summary = found.summary()
    assert summary["budget_met"] is False and summary["outcome"] == NOT_MET
    assert summary["chosen"] == pytest.approx(0.85) and summary["drop"] == pytest.approx(0.15)


def test_a_layer_that_fixes_what_a_float_one_already_fixed_is_skipped():
    """a and b fix the same error (together they gain what a gains): b is measured alone
    as helpful, but once a is float it removes nothing, so it stays int8 and c is tried."""
    chosen, _, _ = run({"a": 0.05, "b": 0.04, "c": 0.02}, overlapping="ab", max_drop=0.0)
    assert chosen == ["a", "c"]


def test_the_reason_says_whether_the_score_went_up_or_down():
    """A layer kept for the output error it removes may have lowered the probe score a
    little: the summary once read "raises the score by -0.06 AP points"."""
    up = search_reason(LayerGain("a", gain=0.004, error_cut=0.15))
    down = search_reason(LayerGain("b", gain=-0.0006, error_cut=0.03))
    assert "raises the score by 0.40 AP points and removes 15%" in up
    assert "lowers the score by 0.06 AP points but removes 3%" in down
    assert "-" not in up + down
