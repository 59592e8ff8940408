"""replay / hindsight_optimum / suggest on hand-made runs and on real curves."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from carbon_callbacks.analysis.readers import load_run
from carbon_callbacks.analysis.replay import hindsight_optimum, metric_full_scale, relative_loss, replay, suggest
from carbon_callbacks.analysis.run import Run
from carbon_callbacks.analysis.stopping import EnergyAwareRule, PatienceRule
from carbon_callbacks.errors import ConfigError

WER = [50.0, 40.0, 32.0, 27.0, 25.0, 24.5, 24.4, 24.4, 24.3, 24.3]
ENERGY = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # 16 kWh in all


def make_run(metric: list[float], energy: list[float] | None = None, name: str = "valid_WER",
             run_name: str = "hand") -> Run:
    energy = energy or [1.0] * len(metric)
    return Run(
        name=run_name, source="memory", format="generic_csv", epochs=tuple(range(1, len(metric) + 1)),
        energy_kwh=energy, co2_kg=[0.5 * e for e in energy], duration_s=[math.nan] * len(metric),
        metrics={name: metric},
    )


def test_replay_patience_numbers_on_hand_made_run() -> None:
    result = replay(make_run(WER, ENERGY), PatienceRule(1))
    assert (result.stop_index, result.stop_epoch, result.stopped) == (7, 8, True)
    assert result.energy_used_kwh == pytest.approx(12.0)
    assert result.energy_total_kwh == pytest.approx(16.0)
    assert result.energy_saved_kwh == pytest.approx(4.0)
    assert result.energy_saved_fraction == pytest.approx(0.25)
    assert result.co2_saved_kg == pytest.approx(2.0)
    assert result.metric_at_stop == 24.4 and result.final_best_metric == 24.3
    assert result.metric_loss == pytest.approx(0.1)
    assert result.metric_loss_relative == pytest.approx(0.1 / 24.3)
    assert "patience 1" in result.rule and "no improvement" in result.reason


def test_replay_never_stopping_saves_nothing() -> None:
    result = replay(make_run(WER, ENERGY), PatienceRule(5))
    assert not result.stopped and result.stop_epoch == 10
    assert result.energy_saved_fraction == 0.0 and result.metric_loss == 0.0
    assert result.reason.startswith("never stopped")


def test_hindsight_optimum_is_earliest_within_bound() -> None:
    run = make_run(WER, ENERGY)
    result = hindsight_optimum(run, 0.02)
    assert result.stop_epoch == 6  # 24.5 <= 24.3 x 1.02, 25.0 is not
    assert result.energy_saved_fraction == pytest.approx(0.5)
    assert hindsight_optimum(run, 0.0).stop_epoch == 9
    with pytest.raises(ConfigError, match="max_loss_relative=-0.1"):
        hindsight_optimum(run, -0.1)


def test_replay_uses_the_metric_direction_and_co2_unit() -> None:
    accuracy = [100.0 - v for v in WER]
    run = make_run(accuracy, ENERGY, name="valid_acc")
    result = replay(run, PatienceRule(1))  # rule built with mode="min": replay switches it to max
    assert result.mode == "max" and result.stop_epoch == 8
    assert result.metric_at_stop == pytest.approx(75.6) and result.metric_loss == pytest.approx(0.1)
    in_co2 = replay(run, EnergyAwareRule(0.4, unit="kg_co2"))
    in_kwh = replay(run, EnergyAwareRule(0.2))  # co2 = 0.5 x kWh: 0.4 per kg CO2 = 0.2 per kWh
    assert in_co2.stop_epoch == in_kwh.stop_epoch


def test_relative_loss_when_final_best_is_zero_uses_the_full_scale() -> None:
    assert relative_loss(0.0, 0.0) == 0.0 and relative_loss(0.0, 0.0, 1.0) == 0.0
    assert math.isinf(relative_loss(0.0066, 0.0))  # no scale given: inf
    assert relative_loss(0.0066, 0.0, 1.0) == pytest.approx(0.0066)  # a fraction: 0.66% of the scale
    assert relative_loss(1.5, 0.0, 100.0) == pytest.approx(0.015)  # a percentage: 1.5 points of 100
    assert relative_loss(0.5, -10.0, 1.0) == pytest.approx(0.05)  # final best != 0: |final best|, scale unused
    assert metric_full_scale([0.3, math.nan, 0.0]) == 1.0 and metric_full_scale([-1.0, 0.5]) == 1.0
    assert metric_full_scale([45.0, 0.0]) == 100.0 and metric_full_scale([math.nan]) == 100.0
    result = replay(make_run([0.3, 0.1, 0.05, 0.05, 0.05, 0.0], name="valid_error"), PatienceRule(2))
    assert result.stop_epoch == 5 and result.metric_loss_relative == pytest.approx(0.05)
    percent = replay(make_run([30.0, 10.0, 5.0, 5.0, 5.0, 0.0], name="valid_error"), PatienceRule(2))
    assert percent.metric_loss_relative == pytest.approx(0.05)


def test_replay_rejects_a_metric_never_evaluated() -> None:
    with pytest.raises(ConfigError, match="never evaluated"):
        replay(make_run([math.nan] * 4), EnergyAwareRule(), metric="valid_WER")


def test_suggest_single_run_is_validated_by_replay() -> None:
    run = make_run(WER, ENERGY)
    suggestion = suggest(run, max_loss_relative=0.02)
    assert suggestion.validation == "in-sample" and suggestion.unit == "kwh"
    assert suggestion.unit_label == "valid_WER per kWh"
    again = replay(run, EnergyAwareRule.from_dict(suggestion.rule))
    assert suggestion.rule["threshold"] == suggestion.value == suggestion.threshold
    assert again.stop_epoch == suggestion.stop_epoch == suggestion.validated_by[0].stop_epoch
    assert again.metric_loss_relative <= 0.02
    assert suggestion.energy_saved_fraction == pytest.approx(again.energy_saved_fraction)
    assert suggestion.energy_saved_fraction > 0
    assert suggestion.hindsight[0].stop_epoch == 6
    assert "per kWh" in suggestion.sentence()


def test_suggest_several_runs_uses_leave_one_out() -> None:
    runs = [make_run([v * scale for v in WER], ENERGY, run_name=f"r{i}") for i, scale in enumerate((1.0, 1.1, 0.9))]
    suggestion = suggest(runs, max_loss_relative=0.02)
    assert suggestion.validation == "leave-one-out"
    assert [r.run_name for r in suggestion.validated_by] == ["r0", "r1", "r2"]
    assert len(suggestion.stop_epochs) == 3
    for run in runs:  # the value chosen on all runs keeps every one of them within the bound
        assert replay(run, EnergyAwareRule.from_dict(suggestion.rule)).metric_loss_relative <= 0.02


def test_suggest_validation_errors() -> None:
    with pytest.raises(ConfigError, match="at least one run"):
        suggest([])
    with pytest.raises(ConfigError, match="disagree"):
        suggest([make_run(WER), make_run(WER, name="valid_acc")])


def test_real_curves_flat_start_and_patience(curves_dir: Path) -> None:
    flat = load_run(curves_dir / "sb_asr_crdnn_ctc_toy_hammaad_v1.txt", power_w=300.0)
    assert not replay(flat, EnergyAwareRule()).stopped  # PER flat at 85 for 7 epochs, then takes off
    spk = load_run(curves_dir / "sb_spkcount_ecapa_unaug_supradeep.txt", power_w=300.0)
    result = replay(spk, PatienceRule(5))
    assert result.stop_epoch == 11 and result.metric_loss == 0.0  # best 0.212 at epoch 6, then degradation
    energy = replay(spk, EnergyAwareRule())  # the best (epoch 6) has not moved over the last 40% of the energy
    assert energy.stopped and energy.metric_loss == 0.0 and energy.stop_epoch == 10


def test_replay_names_its_companion_and_rejects_an_unknown_one(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_asr_sar_tradr_wav2vec2_ctc_sangeet.txt")
    assert replay(run, EnergyAwareRule()).companion == "valid_CER"
    assert replay(run, EnergyAwareRule(), companion=None).companion is None
    with pytest.raises(ConfigError, match="no companion metric 'valid_PER'"):
        replay(run, EnergyAwareRule(), companion="valid_PER")
    speaker = load_run(curves_dir / "sb_spkcount_ecapa_unaug_supradeep.txt")
    assert replay(speaker, EnergyAwareRule()).companion is None  # an error rate with no finer companion
