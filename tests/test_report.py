"""Reports: Markdown with relative PNG links, HTML with embedded PNGs, model-card fields, run-directory reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carbon_callbacks.analysis.readers import load_run
from carbon_callbacks.errors import CarbonCallbacksError, ConfigError, ReadError
from carbon_callbacks.ledger import LedgerRow, LedgerWriter
from carbon_callbacks.report import ModelCardInfo, co2_eq_emissions, write_report, write_run_report

WER = (60.0, 45.0, 35.0, 30.0, 28.0, 27.0, 26.5, 26.2, 26.1, 26.0)


def write_ledger(directory: Path, g_per_kwh: float = 400.0) -> Path:
    """A measured run: train + validate windows per epoch, 0.1 kWh each epoch, PUE 1.2."""
    writer = LedgerWriter(directory)
    for epoch, wer in enumerate(WER):
        for stage, kwh, metrics in (("train", 0.08, {}), ("validate", 0.02, {"val_wer": wer})):
            energy = kwh * 1.2
            writer.append(LedgerRow(
                run_id="r", attempt=0, epoch=epoch, stage=stage, status="complete",
                start_utc=f"2025-01-01T{epoch:02d}:00:00+00:00", end_utc=f"2025-01-01T{epoch:02d}:30:00+00:00",
                duration_s=1800.0, it_energy_kwh=kwh, pue=1.2, energy_kwh=energy, intensity_g_per_kwh=g_per_kwh,
                co2_kg=energy * g_per_kwh / 1000, cost=float("nan"), world_size=1, ranks=1, gpu_kwh=kwh * 0.8,
                cpu_kwh=kwh * 0.15, ram_kwh=kwh * 0.05, gpu_method="nvml_counter", cpu_method="rapl",
                ram_method="ram_heuristic", estimated=False, global_step=epoch, metrics=metrics, note="",
            ))
    writer.write_metadata({"intensity_source": f"explicit {g_per_kwh:g} g/kWh", "pue": 1.2})
    return directory


def test_markdown_report_links_pngs_beside_it(tmp_path: Path) -> None:
    run = load_run(write_ledger(tmp_path / "run"))
    out = write_report([run], tmp_path / "out" / "paper.md", card=ModelCardInfo(training_type="fine-tuning"))
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 3 and all(not Path(link).is_absolute() for link in links)
    assert all((out.parent / link).read_bytes()[:4] == b"\x89PNG" for link in links)
    assert "The last 50% of the CO2" in text and "bought" in text
    assert "co2_eq_emissions:" in text and 'training_type: "fine-tuning"' in text
    assert "emissions: 480.0" in text  # 10 epochs x 0.1 kWh x PUE 1.2 x 400 g/kWh


def test_html_report_embeds_its_images(tmp_path: Path) -> None:
    runs = [load_run(write_ledger(tmp_path / "a")), load_run(write_ledger(tmp_path / "b", g_per_kwh=50.0))]
    out = write_report(runs, tmp_path / "r.html")
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(srcs) == 2 * 3 + 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "Pareto front" in text and "All runs" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "r.html"]  # no stray figure files


def test_model_card_fields_in_grams() -> None:
    from tests.test_summary import make_run

    card = co2_eq_emissions([make_run()], ModelCardInfo(geographical_location="France", hardware_used="1 x A100"))
    assert card == {
        "emissions": 5000.0, "source": card["source"], "training_type": "unknown",
        "geographical_location": "France", "hardware_used": "1 x A100",
    }
    assert "explicit 500 g/kWh" in card["source"]
    with pytest.raises(ConfigError, match="pre-training"):
        ModelCardInfo(training_type="training")


def test_report_needs_md_or_html(tmp_path: Path) -> None:
    from tests.test_summary import make_run

    with pytest.raises(ConfigError, match="FILE.md or FILE.html"):
        write_report([make_run()], tmp_path / "r.pdf")


def test_write_run_report_from_a_speechbrain_directory(tmp_path: Path) -> None:
    lines = [
        f"epoch: {e}, time: 00:50, lr: 1.00e+00 - train loss: 1.0 - valid loss: 0.5, valid WER: {w}"
        for e, w in enumerate(WER, start=1)
    ]
    (tmp_path / "train_log.txt").write_text("\n".join(lines) + "\n")
    path = write_run_report(tmp_path)
    assert path == tmp_path / "report.md"
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "report_co2_vs_metric.png", "report_energy_per_epoch.png", "report_cumulative_energy.png",
    }
    assert "estimated" in path.read_text()


def test_write_run_report_raises_only_package_errors(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match=str(tmp_path)):
        write_run_report(tmp_path)  # nothing to read
    (tmp_path / "train_log.txt").write_text("epoch: 1 - train loss: 1.0 - valid loss: 0.5, valid WER: 40\n")
    (tmp_path / "report.md").mkdir()  # the report path is taken by a directory
    with pytest.raises(CarbonCallbacksError, match="report.md"):
        write_run_report(tmp_path)
