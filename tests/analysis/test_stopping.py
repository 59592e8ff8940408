"""EnergyAwareRule and PatienceRule semantics on synthetic histories (and two real curves)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from carbon_callbacks.analysis.stopping import (
    Decision, EnergyAwareRule, PatienceRule, call_decide, companion_metric, sen_lower_slope, theil_sen_slope,
)
from carbon_callbacks.analysis.readers import load_run
from carbon_callbacks.errors import ConfigError

NAN = math.nan


def first_stop(rule, energy, metric) -> int | None:
    """Index of the first prefix the rule stops on (the causal replay)."""
    for i in range(len(metric)):
        if rule.decide(energy[: i + 1], metric[: i + 1]).stop:
            return i
    return None


def cumulative(n: int, per_epoch: float = 1.0) -> list[float]:
    return [per_epoch * (i + 1) for i in range(n)]


def plateau_curve() -> list[float]:
    """Fast drop, then a flat plateau from index 8 on."""
    return [50, 35, 27, 22, 19, 17, 16, 15.5, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2]


# --------------------------------------------------------------------------------------------- PatienceRule parity


@pytest.mark.parametrize(
    ("values", "patience", "expected"),
    [
        ([6, 5, 5, 5, 5, 5], 3, 4),
        ([6, 5, 4, 4, 3, 3], 1, 3),
        ([6, 5, 6, 5, 5, 5], 3, 4),
    ],
)
def test_patience_matches_lightning_cases(values: list[float], patience: int, expected: int) -> None:
    assert first_stop(PatienceRule(patience), cumulative(len(values)), values) == expected


def test_patience_min_delta_small_gains_are_not_improvements() -> None:
    values = [10.0, 9.95, 9.9, 9.85, 9.8]
    assert first_stop(PatienceRule(2, min_delta=0.1), cumulative(5), values) == 2
    assert first_stop(PatienceRule(2, min_delta=0.0), cumulative(5), values) is None


def test_patience_max_mode_and_nan_gaps() -> None:
    values = [0.5, NAN, 0.6, NAN, 0.6, 0.6, NAN]
    assert first_stop(PatienceRule(2, mode="max"), cumulative(7), values) == 5


def test_patience_zero_stops_on_first_non_improvement_only() -> None:
    assert first_stop(PatienceRule(0), cumulative(3), [3.0, 2.0, 2.5]) == 2


# --------------------------------------------------------------------------------------------- EnergyAwareRule


def test_sen_bounds() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    line = [10.0 - 2.0 * x for x in xs]
    assert theil_sen_slope(xs, line) == sen_lower_slope(xs, line, 0.975) == -2.0  # an exact line: no spread
    noisy = [10.0, 7.0, 9.0, 5.0, 6.0, 3.0]
    assert sen_lower_slope(xs, noisy, 0.5) == pytest.approx(theil_sen_slope(xs, noisy), abs=0.6)
    assert sen_lower_slope(xs, noisy, 0.975) < sen_lower_slope(xs, noisy, 0.75) < theil_sen_slope(xs, noisy)
    assert theil_sen_slope([1.0, 1.0], [2.0, 3.0]) is None and sen_lower_slope([1.0], [2.0], 0.9) is None


def test_plateau_is_stopped_and_reason_has_numbers() -> None:
    metric = plateau_curve()
    rule = EnergyAwareRule()
    stop = first_stop(rule, cumulative(len(metric)), metric)
    assert stop is not None and 9 <= stop <= 14
    decision = rule.decide(cumulative(stop + 1), metric[: stop + 1])
    assert decision.stop and decision.warmed_up
    assert decision.rate_per_unit is not None and decision.rate_per_unit <= decision.threshold_per_unit
    assert decision.equivalent_threshold == decision.threshold_per_unit
    assert "per kWh" in decision.reason and "Sen bound" in decision.reason and "stop" in decision.reason


def test_steadily_improving_run_is_not_stopped() -> None:
    metric = [30.0 * (i + 1) ** -0.5 for i in range(40)]  # power law: elasticity 0.5 >> 2% per doubling
    assert first_stop(EnergyAwareRule(), cumulative(40), metric) is None


def test_noise_keeps_a_flat_window_going_that_a_smooth_one_would_stop() -> None:
    """The forecast uses the optimistic slope bound: noisy flat points still allow a real descent."""
    take_off = [50.0, 40.0, 33.0, 29.0, 27.0, 26.0]
    smooth = take_off + [25.0] * 8
    noisy = take_off + [25.0, 26.5, 25.2, 27.0, 25.4, 26.8, 25.3, 26.6]
    rule = EnergyAwareRule(plateau_share=None)
    smooth_stop = first_stop(rule, cumulative(len(smooth)), smooth)
    noisy_stop = first_stop(rule, cumulative(len(noisy)), noisy)
    assert smooth_stop is not None and (noisy_stop is None or noisy_stop > smooth_stop)
    assert first_stop(EnergyAwareRule(plateau_share=None, confidence=0.5), cumulative(len(noisy)), noisy) is not None


def test_rising_metric_is_stopped_as_overfitting() -> None:
    metric = [0.30, 0.25, 0.22, 0.21, 0.212, 0.216, 0.221, 0.226, 0.232, 0.238, 0.244, 0.25]
    stop = first_stop(EnergyAwareRule(plateau_share=None), cumulative(len(metric)), metric)
    assert stop is not None and stop <= 9
    decision = EnergyAwareRule(plateau_share=None).decide(cumulative(stop + 1), metric[: stop + 1])
    assert decision.rate_per_unit <= 0  # even the optimistic trend does not get back to the best


def test_plateau_share_stops_a_flat_best_and_min_delta_widens_it() -> None:
    metric = [50.0, 40.0, 30.0, 25.0] + [25.0 + 3.0 * (i % 2) for i in range(20)]  # best 25 from index 3 on
    off = dict(confidence=0.999, relative=0.0)  # keep the forecast out of it
    stop = first_stop(EnergyAwareRule(plateau_share=0.6, **off), cumulative(len(metric)), metric)
    assert stop == 10  # 11 kWh spent: the last 60% (from 4.4 kWh, after the best at 4 kWh) brought nothing
    assert "has not improved" in EnergyAwareRule(plateau_share=0.6, **off).decide(
        cumulative(stop + 1), metric[: stop + 1]).reason
    assert first_stop(EnergyAwareRule(plateau_share=0.8, **off), cumulative(len(metric)), metric) == 20
    creeping = [50.0, 40.0, 30.0] + [25.0 - 0.01 * i for i in range(20)]
    assert first_stop(EnergyAwareRule(plateau_share=0.6, **off), cumulative(23), creeping) is None
    assert first_stop(EnergyAwareRule(plateau_share=0.6, min_delta=0.1, **off), cumulative(23), creeping) is not None


def test_ideal_value_stops_at_once() -> None:
    error = [0.3, 0.2, 0.0, 0.02, 0.0]
    decision = EnergyAwareRule().decide(cumulative(3), error[:3])
    assert decision.stop and "ideal value 0" in decision.reason and decision.reason.startswith("ideal value reached")
    assert first_stop(EnergyAwareRule(ideal=None), cumulative(5), error) is None
    assert first_stop(EnergyAwareRule(), cumulative(3), [-3.0, -5.0, 0.0]) is None  # negative metric: no floor
    accuracy = [0.7, 0.9, 1.0, 1.0]
    assert first_stop(EnergyAwareRule(mode="max"), cumulative(4), accuracy) is None  # "auto": no ceiling
    assert first_stop(EnergyAwareRule(mode="max", ideal=1.0), cumulative(4), accuracy) == 2


def test_flat_start_is_not_stopped_before_take_off() -> None:
    metric = [85.0, 86.5, 84.2, 85.9, 84.8, 85.5, 84.9, 85.1, 60.0, 40.0, 25.0, 18.0, 14.0, 12.0, 11.6]
    assert first_stop(EnergyAwareRule(), cumulative(len(metric)), metric) is None
    decision = EnergyAwareRule().decide(cumulative(8), metric[:8])
    assert not decision.stop and not decision.warmed_up and "warm-up" in decision.reason


def test_flat_start_would_stop_without_warm_up() -> None:
    metric = [85.0, 85.0, 84.9, 85.0, 85.0, 84.9, 85.0, 85.0, 60.0]
    assert first_stop(EnergyAwareRule(warmup=0.0), cumulative(len(metric)), metric) is not None


def test_energy_scale_does_not_change_the_relative_decision() -> None:
    metric = plateau_curve()
    stops = {first_stop(EnergyAwareRule(), cumulative(len(metric), scale), metric) for scale in (0.001, 1.0, 1000.0)}
    assert len(stops) == 1 and None not in stops


def test_uneven_epoch_energy_is_used() -> None:
    metric = plateau_curve()
    energy = cumulative(len(metric))
    decision = EnergyAwareRule().decide(energy, metric)
    doubled_last = energy[:-1] + [energy[-1] + 10.0]
    assert EnergyAwareRule().decide(doubled_last, metric).threshold_per_unit < decision.threshold_per_unit


def test_max_mode_mirrors_min_mode() -> None:
    metric = plateau_curve()
    energy = cumulative(len(metric))
    mirrored = [100.0 - v for v in metric]  # accuracy-like, higher is better
    stop_min = first_stop(EnergyAwareRule(0.05, mode="min"), energy, metric)
    stop_max = first_stop(EnergyAwareRule(0.05, mode="max"), energy, mirrored)
    assert stop_min == stop_max is not None
    # the wrong direction never warms up: the "best" is the first value
    assert first_stop(EnergyAwareRule(0.05, mode="min"), energy, mirrored) is None


def test_nan_gaps_are_skipped() -> None:
    dense = plateau_curve()
    sparse: list[float] = []
    for value in dense:
        sparse += [NAN, NAN, value]  # evaluated every third epoch
    energy = cumulative(len(sparse))
    stop = first_stop(EnergyAwareRule(), energy, sparse)
    assert stop is not None and stop % 3 == 2  # stops only at an evaluated epoch
    assert not EnergyAwareRule().decide(energy[:2], sparse[:2]).stop


def test_absolute_threshold_vs_relative() -> None:
    metric = [40.5 - 0.5 * (i + 1) for i in range(30)]  # gains 0.5 per kWh forever: an exact line
    energy = cumulative(30)
    assert first_stop(EnergyAwareRule(0.4), energy, metric) is None
    assert first_stop(EnergyAwareRule(0.6), energy, metric) == 8  # warm-up: 10% of 40 gained at index 8
    assert first_stop(EnergyAwareRule(0.6, warmup=0.0), energy, metric) == 4  # 5 evaluations
    assert first_stop(EnergyAwareRule(0.6, warmup=0.0, patience=3), energy, metric) == 6
    assert first_stop(EnergyAwareRule(), energy, metric) is None  # relative: 0.5/kWh >> 2% of the best per kWh
    decision = EnergyAwareRule(0.6).decide(energy[:6], metric[:6])
    assert decision.threshold_per_unit == 0.6 and decision.rate_per_unit == pytest.approx(0.5)


def test_kg_co2_unit_in_reason() -> None:
    metric = plateau_curve()
    decision = EnergyAwareRule(unit="kg_co2").decide(cumulative(len(metric)), metric)
    assert "kg CO2" in decision.reason


def test_real_curves_dortmund_plateau_is_survived_and_zero_error_stops(curves_dir: Path) -> None:
    """dortmund wav2vec2: WER flat 25.3-26.8 for 10 epochs (10-20), then 22.5 at 41; speaker ID reaches 0 at 7."""
    from carbon_callbacks.analysis.replay import replay

    run = load_run(curves_dir / "sb_asr_sar_dortmund_wav2vec2_ctc_sangeet.txt")
    dortmund = replay(run, EnergyAwareRule())  # its CER keeps improving through the WER plateau: vetoed
    assert dortmund.companion == "valid_CER"
    assert dortmund.stop_epoch >= 34 and dortmund.metric_loss_relative <= 0.05
    alone = replay(run, EnergyAwareRule(), companion=None)  # the WER alone looks converged at epoch 16
    assert alone.stop_epoch < 21 and alone.metric_loss_relative > 0.05
    speaker = replay(load_run(curves_dir / "sb_speakerid_duartemoura_exp3_noaugment.txt"), EnergyAwareRule())
    assert speaker.stop_epoch == 7 and speaker.metric_loss == 0.0 and "ideal" in speaker.reason


def test_round_trip_and_repr() -> None:
    rule = EnergyAwareRule(0.3, unit="kg_co2", mode="max", window=4, window_share=0.3, patience=3, warmup=0.2,
                           min_delta=0.01, relative=0.05, confidence=0.9, plateau_share=None, ideal=1.0)
    again = EnergyAwareRule.from_dict(rule.to_dict())
    assert again == rule and again.to_dict() == rule.to_dict()
    assert "threshold=0.3" in repr(rule) and "plateau off" in rule.describe()
    assert EnergyAwareRule.from_dict({}) == EnergyAwareRule()
    assert EnergyAwareRule().to_dict()["ideal"] == "auto"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"threshold": -1.0}, "threshold=-1.0"),
        ({"threshold": "a lot"}, "threshold='a lot'"),
        ({"unit": "joule"}, "'kwh', 'kg_co2'"),
        ({"mode": "up"}, "'min' or 'max'"),
        ({"window": 1}, "window=1"),
        ({"window": 2.5}, "integer >= 2"),
        ({"patience": 0}, "patience=0"),
        ({"warmup": 1.5}, "[0.0, 1.0]"),
        ({"window_share": 1.0}, "window_share=1.0"),
        ({"relative": 1.5}, "relative=1.5"),
        ({"confidence": 0.2}, "confidence=0.2"),
        ({"plateau_share": 0.0}, "plateau_share=0.0"),
        ({"ideal": "zero"}, "ideal='zero'"),
        ({"min_delta": -0.1}, "min_delta=-0.1"),
    ],
)
def test_validation_names_value_and_allowed(kwargs: dict, named: str) -> None:
    threshold = kwargs.pop("threshold", None)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        EnergyAwareRule(threshold, **kwargs)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        EnergyAwareRule.from_dict({"treshold": 1.0})


def test_patience_validation() -> None:
    with pytest.raises(ConfigError, match="patience=-1"):
        PatienceRule(-1)
    with pytest.raises(ConfigError, match="mode='avg'"):
        PatienceRule(3, mode="avg")


def test_decide_rejects_mismatched_lengths() -> None:
    with pytest.raises(ConfigError, match="one per point"):
        EnergyAwareRule().decide([1.0, 2.0], [3.0])


def test_empty_history_does_not_stop() -> None:
    assert EnergyAwareRule().decide([], []) == Decision(False, "no evaluation yet")
    assert not PatienceRule(0).decide([], []).stop


# ------------------------------------------------------------------------------------------------------ companion


@pytest.mark.parametrize(
    ("metric", "available", "expected"),
    [
        ("valid_WER", ["valid_WER", "valid_CER", "valid_loss"], "valid_CER"),
        ("val/wer", ["val/wer", "val/cer"], "val/cer"),
        ("val_wer", ["val_wer", "val_CER"], None),  # another spelling is another metric
        ("valid_WER", ["valid_WER"], None),
        ("valid_EER", ["valid_EER", "valid_CER"], None),  # no finer EER
    ],
)
def test_companion_metric_names(metric: str, available: list[str], expected: str | None) -> None:
    assert companion_metric(metric, available) == expected


def wer_plateau_cer_improving() -> tuple[list[float], list[float]]:
    """WER flat (quantised) from index 8 on, while the CER of the same outputs keeps falling 1% an epoch."""
    wer = plateau_curve()
    cer = [v / 2.5 for v in wer[:8]] + [6.0 * 0.99 ** i for i in range(len(wer) - 8)]
    return wer, cer


def test_companion_still_improving_vetoes_a_stop() -> None:
    wer, cer = wer_plateau_cer_improving()
    energy, rule = cumulative(len(wer)), EnergyAwareRule()
    alone = first_stop(rule, energy, wer)
    assert alone is not None
    vetoed = rule.decide(energy[: alone + 1], wer[: alone + 1], companion=cer[: alone + 1])
    assert not vetoed.stop and "vetoed" in vetoed.reason and vetoed.warmed_up
    flat_cer = [v / 2.5 for v in wer]  # the companion on the same plateau: no veto
    assert rule.decide(energy[: alone + 1], wer[: alone + 1], companion=flat_cer[: alone + 1]).stop


def test_companion_never_evaluated_or_ideal_value_is_not_vetoed() -> None:
    wer, _ = wer_plateau_cer_improving()
    energy, rule = cumulative(len(wer)), EnergyAwareRule()
    assert rule.decide(energy, wer, companion=[NAN] * len(wer)).stop
    zero = [0.3, 0.2, 0.1, 0.0]
    assert rule.decide(cumulative(4), zero, companion=[0.2, 0.15, 0.1, 0.05]).stop  # 0 error: nothing to gain


def test_companion_with_an_absolute_threshold_is_judged_at_the_same_relative_rate() -> None:
    wer, cer = wer_plateau_cer_improving()
    energy = cumulative(len(wer))
    rule = EnergyAwareRule(0.01, unit="kwh")
    assert rule._companion_rule(wer, cer).threshold == pytest.approx(0.01 * min(cer) / min(wer))
    assert not rule.decide(energy, wer, companion=cer).stop


def test_companion_length_must_match_and_rules_without_it_still_work() -> None:
    with pytest.raises(ConfigError, match="companion values"):
        EnergyAwareRule().decide(cumulative(12), plateau_curve()[:12], companion=[1.0])

    class Legacy:
        def decide(self, energy, metric):
            return Decision(len(metric) > 2)

    assert call_decide(Legacy(), [1, 2, 3], [3, 2, 1], companion=[1, 1, 1]).stop
    assert not call_decide(PatienceRule(3), [1, 2, 3], [3, 2, 1], companion=[1, 1, 1]).stop
