"""summarize / compare: the numbers on a hand-made run whose answers are known, and their words."""

from __future__ import annotations

import json
import math

import pytest

from carbon_callbacks.analysis.run import Run
from carbon_callbacks.errors import ConfigError
from carbon_callbacks.summary import compare, format_co2, format_energy, format_quantity, short_metric_name, summarize

WER = (50.0, 40.0, 30.0, 25.0, 22.0, 21.0, 20.5, 20.2, 20.1, 20.0)


def make_run(name: str = "toy", wer: tuple[float, ...] = WER, kwh: float = 1.0, basis: str = "measured") -> Run:
    n = len(wer)
    return Run(
        name=name, source=f"/runs/{name}/energy.csv", format="ledger", epochs=tuple(range(1, n + 1)),
        energy_kwh=(kwh,) * n, co2_kg=(kwh / 2,) * n, duration_s=(60.0,) * n,
        metrics={"valid WER": wer, "train loss": tuple(1.0 / (i + 1) for i in range(n))},
        energy_basis=basis, energy_note="test", intensity_g_per_kwh=500.0, intensity_source="explicit 500 g/kWh",
    )


def test_summary_numbers_on_a_hand_made_run() -> None:
    s = summarize(make_run())
    assert (s.metric, s.mode) == ("valid WER", "min")  # WER preferred over loss, direction inferred
    assert s.epochs == 10 and s.total_energy_kwh == pytest.approx(10.0) and s.total_co2_kg == pytest.approx(5.0)
    assert (s.best_metric, s.best_epoch, s.final_metric) == (20.0, 10, 20.0)
    half = s.statement(0.5)
    assert half is not None and half.epoch == 5  # 2.5 of 5 kg spent after epoch 5
    assert half.gain_abs == pytest.approx(2.0) and half.gain_rel == pytest.approx(2.0 / 22.0)
    assert s.knee_epoch is not None and 2 <= s.knee_epoch <= 6
    assert not s.energy_is_estimated


def test_json_has_the_documented_keys_and_no_nan() -> None:
    data = summarize(make_run()).to_json_dict()
    for key in ("epochs", "total_energy_kwh", "total_co2_kg", "energy_is_estimated", "best_metric", "best_epoch",
                "half_co2_epoch", "metric_gain_last_half_co2", "knee_epoch", "suggested_threshold", "metric", "mode",
                "energy_note", "intensity_source", "pue"):
        assert key in data
    assert data["half_co2_epoch"] == 5 and data["metric_gain_last_half_co2"] == pytest.approx(2.0)
    threshold = data["suggested_threshold"]
    assert threshold is not None
    for key in ("value", "unit", "stop_epoch", "energy_saved_fraction", "metric_loss"):
        assert key in threshold
    json.dumps(data, allow_nan=False)


def test_sentences_say_what_the_last_half_bought() -> None:
    s = summarize(make_run())
    text = s.describe_fraction(0.5)
    assert text.startswith("The last 50% of the CO2 (2.5 kg, epochs 6-10) bought 2 WER (9.1% relative)")
    assert "WER" in s.describe_suggestion()


def test_a_flat_tail_bought_nothing() -> None:
    s = summarize(make_run(wer=(30.0, 20.0, 10.0, 10.0, 10.0, 10.0)))
    assert "bought nothing" in s.describe_fraction()
    assert s.statement(0.5).gain_abs == 0


def test_log_without_energy_speaks_of_epochs_and_hides_kwh() -> None:
    s = summarize(make_run(basis="equal"))
    assert "of the epochs" in s.describe_fraction()
    data = s.to_json_dict()
    assert data["total_energy_kwh"] is None and data["fractions"][0]["tail_co2_kg"] is None


@pytest.mark.parametrize(
    "kwargs, match",
    [({"metric": "valid CER"}, "valid CER"), ({"mode": "sideways"}, "sideways"), ({"fractions": (1.5,)}, "1.5")],
)
def test_bad_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        summarize(make_run(), **kwargs)


def test_metric_never_evaluated_is_refused() -> None:
    with pytest.raises(ConfigError, match="never evaluated"):
        summarize(make_run(wer=(math.nan,) * 4), metric="valid WER")


def test_compare_footprint_and_pareto() -> None:
    cheap = make_run("cheap", wer=(40.0, 30.0, 28.0, 27.0), kwh=1.0)
    dear = make_run("dear", wer=(40.0, 30.0, 25.0, 24.0), kwh=3.0)
    worse = make_run("worse", wer=(45.0, 35.0, 33.0, 31.0), kwh=2.0)
    c = compare([cheap, dear, worse])
    assert c.footprint.energy_kwh == pytest.approx(4 + 12 + 8)
    assert [p.name for p in c.pareto] == ["cheap", "dear"]
    data = c.to_json_dict()
    assert [r["run"] for r in data["runs"]] == ["cheap", "dear", "worse"]
    assert "Pareto front" in c.describe_pareto() and "3 runs" in c.describe_footprint()


def test_formatting_helpers() -> None:
    assert format_quantity(0.63) == "0.63" and format_quantity(1234.5) == "1234" and format_quantity(2.0) == "2"
    assert format_co2(0.0145) == "14.5 g" and format_co2(2.5) == "2.5 kg"
    assert format_energy(0.259) == "259 Wh" and format_energy(3200.0) == "3.2 MWh"
    assert short_metric_name("valid WER") == "WER" and short_metric_name("val_wer") == "WER"


def test_a_threshold_reads_as_the_price_of_one_more_point() -> None:
    s = summarize(make_run())
    assert s.suggestion is not None and s.suggestion.value > 0
    text = s.describe_suggestion()
    assert text.startswith(f"Stop when one more WER point would cost more than {format_energy(1 / s.suggestion.value)}")
