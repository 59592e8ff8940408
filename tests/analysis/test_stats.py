"""Statistics on runs: totals, best-so-far, the fraction statement, the knee, repricing, footprint, Pareto."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from carbon_callbacks.analysis.readers import load_run
from carbon_callbacks.analysis.run import Run
from carbon_callbacks.analysis.stats import (
    best_so_far,
    footprint,
    fraction_statement,
    knee,
    knee_search,
    pareto_front,
    price_in,
    totals,
)
from carbon_callbacks.carbon import Intensity
from carbon_callbacks.errors import ConfigError

from .test_readers import make_ledger

REPO = Path(__file__).resolve().parents[2]


def make_run(metric: list[float], *, name: str = "r", energy: list[float] | None = None, g: float = 500.0,
             metric_name: str = "valid_WER", basis: str = "measured", times: bool = False) -> Run:
    """A run with the given per-epoch metric, 1 kWh per epoch unless told, priced at ``g`` g/kWh."""
    n = len(metric)
    energy = energy or [1.0] * n
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    return Run(
        name=name, source="mem", format="generic_csv", epochs=tuple(range(1, n + 1)), energy_kwh=tuple(energy),
        co2_kg=tuple(e * g / 1000 for e in energy), duration_s=(3600.0,) * n, metrics={metric_name: metric},
        energy_basis=basis, intensity_g_per_kwh=g, intensity_source="test", pue=1.0,
        start_utc=tuple(start + timedelta(hours=i) for i in range(n)) if times else None,
        end_utc=tuple(start + timedelta(hours=i + 1) for i in range(n)) if times else None,
    )


# -- best so far and metric inference -----------------------------------------------------------------------
def test_best_so_far_skips_unevaluated_epochs() -> None:
    nan = math.nan
    out = best_so_far([nan, 5.0, nan, 6.0, 4.0], "min")
    assert np.isnan(out[0]) and out[1:].tolist() == [5.0, 5.0, 5.0, 4.0]
    assert best_so_far([0.2, 0.1, 0.3], "max").tolist() == [0.2, 0.2, 0.3]
    with pytest.raises(ConfigError, match="mode"):
        best_so_far([1.0], "lowest")


def test_infer_metric_prefers_wer_and_validation() -> None:
    run = Run("r", "m", "generic_csv", (1, 2), (1, 1), (1, 1), (0, 0),
              {"train_loss": [2, 1], "valid_loss": [2, 1], "valid_CER": [5, 4], "valid_WER": [9, 8],
               "test_WER": [9, 9]})
    assert run.infer_metric() == ("valid_WER", "min")
    assert run.infer_metric("valid_CER") == ("valid_CER", "min")
    assert run.infer_metric("train_loss", "max") == ("train_loss", "max")
    with pytest.raises(ConfigError, match="available"):
        run.infer_metric("valid_PER")
    with pytest.raises(ConfigError, match="mode"):
        run.infer_metric(mode="up")


def test_infer_metric_ambiguous_or_unknown() -> None:
    tied = Run("r", "m", "generic_csv", (1,), (1,), (1,), (0,), {"val_wer": [1], "dev_wer": [2]})
    with pytest.raises(ConfigError, match="--metric"):
        tied.infer_metric()
    unknown = Run("r", "m", "generic_csv", (1,), (1,), (1,), (0,), {"score": [1]})
    with pytest.raises(ConfigError, match="--metric NAME and --mode"):
        unknown.infer_metric()
    with pytest.raises(ConfigError, match="--mode"):
        unknown.infer_metric("score")
    positive = Run("r", "m", "generic_csv", (1,), (1,), (1,), (0,), {"val_si_snr": [12.0]})
    assert positive.infer_metric() == ("val_si_snr", "max")  # dB, not SpeechBrain's negative loss


# -- totals --------------------------------------------------------------------------------------------------
def test_totals_of_a_ledger(tmp_path: Path) -> None:
    run = load_run(make_ledger(tmp_path))
    t = totals(run)
    assert t.training_energy_kwh == pytest.approx(0.040 * 1.5)
    assert t.energy_kwh == pytest.approx(0.044 * 1.5)
    assert t.it_energy_kwh == pytest.approx(0.044)
    assert t.co2_kg == pytest.approx(0.044 * 1.5 * 0.4)
    assert t.cost == pytest.approx(0.040 * 1.5 * 0.2)
    assert t.duration_s == pytest.approx(7 * 1800)
    assert t.by_stage_kwh["validate"] == pytest.approx(0.006 * 1.5)
    assert sum(t.by_component_kwh.values()) == pytest.approx(t.training_energy_kwh)


# -- fraction statement --------------------------------------------------------------------------------------
def test_fraction_statement_numbers() -> None:
    stat = fraction_statement(make_run([10.0, 8.0, 7.0, 6.5]))
    assert (stat.epoch, stat.next_epoch, stat.spent_share) == (2, 3, 0.5)
    assert (stat.best_at, stat.best_end, stat.gain_abs) == (8.0, 6.5, 1.5)
    assert stat.gain_rel == pytest.approx(1.5 / 8)
    assert stat.rate_per_kwh == pytest.approx(0.75)
    assert stat.rate_per_kg == pytest.approx(1.5)
    assert "last 50% of the CO2" in stat.sentence and "from 8 to 6.5" in stat.sentence


def test_fraction_statement_uses_the_first_epoch_reaching_the_share() -> None:
    run = make_run([0.5, 0.6, 0.7, 0.8], metric_name="val_acc", energy=[3.0, 1.0, 1.0, 1.0])
    stat = fraction_statement(run, fraction=0.5)
    assert stat.epoch == 1 and stat.spent_share == 0.5
    assert stat.mode == "max" and stat.gain_abs == pytest.approx(0.3)
    late = fraction_statement(run, fraction=0.9)
    assert late.epoch == 4 and late.next_epoch is None and math.isnan(late.rate_per_kwh)


def test_fraction_statement_before_the_first_evaluation() -> None:
    stat = fraction_statement(make_run([math.nan, math.nan, 20.0, 18.0]))
    assert math.isnan(stat.best_at) and "not evaluated" in stat.sentence


def test_fraction_statement_no_gain_and_bad_fraction() -> None:
    stat = fraction_statement(make_run([5.0, 4.0, 4.5, 4.2]))
    assert stat.gain_abs == 0 and "bought no improvement" in stat.sentence
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="fraction"):
            fraction_statement(make_run([1.0, 0.5]), fraction=bad)


def test_fraction_statement_equal_energy_speaks_of_epochs() -> None:
    stat = fraction_statement(make_run([4.0, 3.0, 2.0, 1.0], basis="equal"))
    assert "of the epochs" in stat.sentence and "kWh" not in stat.sentence


# -- knee ----------------------------------------------------------------------------------------------------
def test_knee_of_a_convex_curve() -> None:
    epochs = np.arange(40)
    wer = (10 + 90 * np.exp(-epochs / 5)).tolist()
    found, why = knee_search(make_run(wer))
    assert why == "" and found is not None
    assert 4 <= found.epoch <= 15  # the elbow of exp(-e/5) on 40 epochs, not its first point
    assert 0 < found.share < 0.4 and found.best_end == pytest.approx(wer[-1])


def test_knee_of_an_increasing_accuracy() -> None:
    acc = (1 - np.exp(-np.arange(30) / 4)).tolist()
    found = knee(make_run(acc, metric_name="val_acc"))
    assert found is not None and found.mode == "max" and 3 <= found.epoch <= 12


def test_noisy_plateau_does_not_move_the_knee_to_the_first_epoch() -> None:
    rng = np.random.default_rng(0)
    wer = (10 + 90 * np.exp(-np.arange(40) / 5) + rng.normal(0, 1.5, 40)).tolist()
    found = knee(make_run(wer))
    assert found is not None and 4 <= found.epoch <= 16


@pytest.mark.parametrize(
    ("metric", "reason"),
    [
        ([5.0, 4.0, 3.0], "at least 5"),
        ([5.0, 6.0, 7.0, 8.0, 9.0], "never improved"),
        ([10.0, 9.0, 8.0, 7.0, 6.0, 5.0], "diminishing returns|still improving"),
    ],
)
def test_no_knee_gives_a_reason(metric: list[float], reason: str) -> None:
    found, why = knee_search(make_run(metric))
    assert found is None and re.search(reason, why)


def test_knee_on_real_curves(curves_dir: Path) -> None:
    late_takeoff = load_run(curves_dir / "sb_asr_crdnn_ctc_toy_hammaad_v1.txt")
    assert knee(late_takeoff) is None  # flat for 7 epochs then a drop to the end: no diminishing returns yet
    sepformer = knee(load_run(curves_dir / "sb_enh_dns_sepformer_sangeet.txt"))
    assert sepformer is not None and sepformer.share < 0.5 and sepformer.metric == "valid_si-snr"


# -- price_in ------------------------------------------------------------------------------------------------
def test_price_in_constant_and_pue(tmp_path: Path) -> None:
    run = load_run(make_ledger(tmp_path))
    cheap = price_in(run, 50.0)
    assert cheap.energy_kwh == run.energy_kwh
    assert cheap.co2_kg == pytest.approx([e * 0.05 for e in run.energy_kwh])
    assert cheap.unattributed_co2_kg == pytest.approx(run.unattributed_kwh * 0.05)
    moved = price_in(run, pue=1.2)
    assert moved.energy_kwh == pytest.approx([e / 1.5 * 1.2 for e in run.energy_kwh])
    assert moved.co2_kg == pytest.approx([c / 1.5 * 1.2 for c in run.co2_kg])
    assert moved.cost == pytest.approx([c / 1.5 * 1.2 for c in run.cost or ()])
    assert moved.component_kwh["gpu"] == pytest.approx([e * 0.8 for e in moved.energy_kwh])
    assert price_in(run) is run
    assert "repriced" in moved.notes[-1]


def test_price_in_country() -> None:
    run = price_in(make_run([3.0, 2.0]), "FR")
    assert 20 < run.intensity_g_per_kwh < 120
    assert run.co2_kg[0] == pytest.approx(run.intensity_g_per_kwh / 1000)


class _HourlyIntensity(Intensity):
    source = "test hourly"

    def mean_g_per_kwh(self, start_utc: datetime, end_utc: datetime) -> float:
        return 100.0 * (1 + start_utc.hour)


def test_price_in_time_varying_needs_timestamps() -> None:
    run = price_in(make_run([3.0, 2.0], times=True), _HourlyIntensity())
    assert run.co2_kg == pytest.approx((0.1, 0.2))
    with pytest.raises(ConfigError, match="timestamps"):
        price_in(make_run([3.0, 2.0]), _HourlyIntensity())
    with pytest.raises(ConfigError, match="pue"):
        price_in(make_run([3.0, 2.0]), pue=0.9)


# -- several runs --------------------------------------------------------------------------------------------
def test_footprint_sums_and_excludes_unpriced_runs() -> None:
    runs = [make_run([3.0, 2.0], name="a"), make_run([3.0, 1.0], name="b", energy=[2.0, 2.0]),
            make_run([1.0, 0.5], name="c", basis="equal")]
    total = footprint(runs)
    assert total.n_runs == 3 and total.excluded == ("c",)
    assert total.energy_kwh == pytest.approx(6.0) and total.co2_kg == pytest.approx(3.0)
    assert total.cost is None and total.duration_s == pytest.approx(6 * 3600)
    with pytest.raises(ConfigError):
        footprint([])


def test_pareto_front() -> None:
    runs = [
        make_run([9.0, 8.0], name="cheap", energy=[1.0, 1.0]),
        make_run([9.0, 7.0], name="mid", energy=[2.0, 2.0]),
        make_run([9.0, 7.5], name="dominated", energy=[3.0, 3.0]),
        make_run([9.0, 6.0], name="best", energy=[5.0, 5.0]),
    ]
    front = pareto_front(runs)
    assert [p.name for p in front] == ["cheap", "mid", "best"]
    assert front[0] == ("cheap", pytest.approx(1.0), 8.0)
    with pytest.raises(ConfigError, match="different directions"):
        pareto_front([runs[0], make_run([0.5, 0.6], metric_name="val_acc")])
    with pytest.raises(ConfigError, match="no energy figure"):
        pareto_front([runs[0], make_run([1.0], basis="equal", name="x")])


# -- the documentation example runs ---------------------------------------------------------------------------
def test_docs_example_runs(
    monkeypatch: pytest.MonkeyPatch, curves_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "docs" / "analyzer.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(REPO)
    for block in blocks:
        exec(compile(block, "docs/analyzer.md", "exec"), {})
    assert "valid_WER" in capsys.readouterr().out
