"""Figures: every function returns (fig, ax), draws into a given ax, labels units and says "estimated"."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from carbon_callbacks import plots
from carbon_callbacks.analysis.readers import load_run
from carbon_callbacks.analysis.run import Run
from carbon_callbacks.errors import ConfigError

WER = (50.0, 40.0, 30.0, 25.0, 22.0, 21.0, 20.5, 20.2, 20.1, 20.0)


def make_run(name: str = "toy", kwh: float = 1.0, basis: str = "measured", wer: tuple = WER) -> Run:
    n = len(wer)
    return Run(
        name=name, source=name, format="ledger", epochs=tuple(range(1, n + 1)), energy_kwh=(kwh,) * n,
        co2_kg=(kwh / 2,) * n, duration_s=(60.0,) * n, metrics={"valid WER": wer},
        stage_kwh={"train": (0.8 * kwh,) * n, "validate": (0.2 * kwh,) * n},
        component_kwh={"gpu": (0.7 * kwh,) * n, "cpu": (0.2 * kwh,) * n, "ram": (0.1 * kwh,) * n},
        energy_basis=basis, energy_note="estimated: epoch duration x 300 W", intensity_g_per_kwh=500.0,
        intensity_source="explicit 500 g/kWh",
    )


def test_co2_vs_metric_marks_half_end_and_knee() -> None:
    fig, ax = plots.plot_co2_vs_metric(make_run())
    assert isinstance(fig, Figure) and ax.figure is fig
    assert ax.get_xlabel() == "cumulative CO$_2$-eq (kg)"
    assert "valid WER" in ax.get_ylabel() and "lower is better" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("50% of the CO$_2$ spent (epoch 5)") for label in labels)
    assert any("last 50% of the CO$_2$ bought 2 WER" in label for label in labels)
    assert any(label.startswith("knee") for label in labels)


def test_estimated_energy_is_said_on_the_axis_and_small_values_in_grams() -> None:
    run = make_run(kwh=0.01, basis="duration")
    _, ax = plots.plot_co2_vs_metric(run)
    assert ax.get_xlabel() == "cumulative CO$_2$-eq (g, estimated)"
    _, ax = plots.plot_energy_per_epoch(run)
    assert ax.get_ylabel() == "energy per epoch (Wh, estimated)"
    _, ax = plots.plot_cumulative_energy(run)
    assert ax.get_ylabel() == "cumulative energy (Wh, estimated)"


def test_every_function_draws_into_a_given_ax() -> None:
    fig = Figure()
    axes = fig.subplots(2, 2).ravel()
    runs = [make_run("a", 1.0), make_run("b", 2.0, wer=tuple(w - 1 for w in WER))]
    results = [
        plots.plot_co2_vs_metric(runs, ax=axes[0]),
        plots.plot_energy_per_epoch(runs[0], ax=axes[1]),
        plots.plot_cumulative_energy(runs, ax=axes[2]),
        plots.plot_pareto(runs, ax=axes[3]),
    ]
    for (got_fig, got_ax), ax in zip(results, axes):
        assert got_fig is fig and got_ax is ax
    assert len(axes[3].collections) >= 2  # all runs, and the front


def test_energy_per_epoch_stacks_stages_or_components() -> None:
    run = make_run()
    _, ax = plots.plot_energy_per_epoch(run)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"train", "validate"}
    _, ax = plots.plot_energy_per_epoch(run, by="component")
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"gpu", "cpu", "ram"}
    with pytest.raises(ConfigError, match="by='stack'"):
        plots.plot_energy_per_epoch(run, by="stack")


def test_log_without_energy_plots_against_share_of_epochs() -> None:
    _, ax = plots.plot_co2_vs_metric(make_run(basis="equal"))
    assert "share of the run's epochs" in ax.get_xlabel()


def test_save_figure_writes_each_format(tmp_path: Path) -> None:
    fig, _ = plots.plot_cumulative_energy(make_run())
    written = plots.save_figure(fig, tmp_path / "sub" / "energy", ("png", "svg"))
    assert [p.name for p in written] == ["energy.png", "energy.svg"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert written[0].read_bytes()[:4] == b"\x89PNG"


def test_real_speechbrain_curve(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_asr_sar_tradr_wav2vec2_ctc_sangeet.txt", gpu="A100")
    fig, ax = plots.plot_co2_vs_metric(run)
    assert "estimated" in ax.get_xlabel()
    assert fig.get_suptitle() == "" and "A100" in fig._supxlabel.get_text()  # the footnote names the assumption


def test_no_runs_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        plots.plot_cumulative_energy([])
