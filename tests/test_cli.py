"""The carbon-callbacks command: JSON keys, exit status 2 with ONE line on stderr for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_callbacks._files import MAX_FILE_BYTES
from carbon_callbacks._version import __version__
from carbon_callbacks.cli import main
from tests.test_files import sparse_file
from tests.test_report import write_ledger

SCRIPT = Path(sys.executable).parent / "carbon-callbacks"
WER = (60.0, 45.0, 35.0, 30.0, 28.0, 27.0, 26.5, 26.2, 26.1, 26.0)


@pytest.fixture
def train_log(tmp_path: Path) -> Path:
    """A SpeechBrain train_log.txt with inline epoch times (energy = duration x assumed power)."""
    lines = [
        f"epoch: {e}, time: 01:40, lr: 1.00e+00 - train loss: 1.0 - valid loss: 0.5, valid CER: {w / 3:.2f}, "
        f"valid WER: {w}"
        for e, w in enumerate(WER, start=1)
    ]
    path = tmp_path / "train_log.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_json(capsys: pytest.CaptureFixture[str], train_log: Path) -> None:
    code, out, err = run_main(capsys, "analyze", train_log, "--json", "--gpu", "A100", "--intensity", "100")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["metric"] == "valid_WER" and data["mode"] == "min" and data["epochs"] == 10
    assert data["energy_is_estimated"] is True and data["intensity_source"] == "explicit 100 g/kWh"
    assert data["total_energy_kwh"] == pytest.approx(10 * 100 * 400 / 3.6e6)
    assert data["total_co2_kg"] == pytest.approx(data["total_energy_kwh"] * 0.1)
    for key in ("best_metric", "best_epoch", "half_co2_epoch", "metric_gain_last_half_co2", "knee_epoch"):
        assert key in data
    assert {"value", "unit", "stop_epoch", "energy_saved_fraction", "metric_loss"} <= set(data["suggested_threshold"])


def test_analyze_text_report_in_words(capsys: pytest.CaptureFixture[str], train_log: Path) -> None:
    code, out, _ = run_main(capsys, "analyze", train_log, "--power-w", "300", "--country", "FR", "--pue", "1.2")
    assert code == 0
    flat = " ".join(out.split())
    assert "The last 50% of the CO2" in flat and "bought 2 WER" in flat
    assert "Suggested threshold:" in flat and "estimated" in flat and "France" in flat


def test_analyze_several_runs_footprint_and_pareto(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = write_ledger(tmp_path / "a"), write_ledger(tmp_path / "b", g_per_kwh=50.0)
    code, out, _ = run_main(capsys, "analyze", a, b, "--json")
    data = json.loads(out)
    assert code == 0 and [r["run"] for r in data["runs"]] == ["a", "b"]
    assert data["footprint"]["total_energy_kwh"] == pytest.approx(2 * 1.2)
    assert [p["run"] for p in data["pareto_front"]] == ["b"]  # same curve, less CO2
    code, out, _ = run_main(capsys, "analyze", a, b)
    assert "Pareto front" in out and "2 runs" in out


def test_replay_json_keys(capsys: pytest.CaptureFixture[str], train_log: Path) -> None:
    code, out, _ = run_main(capsys, "replay", train_log, "--rule", "patience", "--patience", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["stop_epoch"] == 10 and data["energy_saved_fraction"] == 0  # always improving
    for key in ("stop_epoch", "energy_saved_fraction", "metric_at_stop", "final_best_metric", "metric_loss_relative"):
        assert key in data
    code, out, _ = run_main(capsys, "replay", train_log, "--threshold", "1000", "--metric", "valid_CER")
    assert code == 0 and "valid_CER" in out and "stops" in out


def test_plot_writes_each_format(capsys: pytest.CaptureFixture[str], train_log: Path, tmp_path: Path) -> None:
    code, out, _ = run_main(capsys, "plot", train_log, "--out", tmp_path / "figs", "--format", "png,svg")
    written = [Path(line) for line in out.splitlines()]
    assert code == 0 and len(written) == 6 and all(p.is_file() for p in written)
    assert {p.suffix for p in written} == {".png", ".svg"}


def test_report_markdown(capsys: pytest.CaptureFixture[str], train_log: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "rep" / "report.md"
    code, out, _ = run_main(capsys, "report", train_log, "--out", out_file, "--gpu", "A100", "--n-gpus", "2",
                            "--training-type", "pre-training")
    text = out_file.read_text()
    assert code == 0 and out.strip() == str(out_file)
    assert 'hardware_used: "2 x A100"' in text and 'training_type: "pre-training"' in text


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.txt"
    path.write_bytes(b"\x00\x01 this is not a training log \xff\n")
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.txt"
    path.write_text("")
    return path


def _huge(tmp_path: Path, name: str = "huge.txt") -> Path:
    return sparse_file(tmp_path / name, MAX_FILE_BYTES + 1)


@pytest.mark.parametrize(
    "make_args, needle",
    [
        (lambda tmp, log: ["analyze", tmp / "missing.txt"], "missing.txt"),
        (lambda tmp, log: ["analyze", _garbage(tmp)], "garbage.txt"),
        (lambda tmp, log: ["analyze", _empty(tmp)], "empty.txt"),
        (lambda tmp, log: ["analyze", _huge(tmp)], f"huge.txt: the log has {MAX_FILE_BYTES + 1:,} bytes"),
        (lambda tmp, log: ["analyze", _huge(tmp, "huge.csv")], f"huge.csv: the log has {MAX_FILE_BYTES + 1:,} bytes"),
        (lambda tmp, log: ["analyze", log, "--intensity", _huge(tmp, "grid.csv")], "grid.csv: the intensity file has"),
        (lambda tmp, log: ["analyze", "/dev/zero"], "/dev/zero: not a regular file"),
        (lambda tmp, log: ["analyze", log, "--metric", "valid BLEU"], "valid BLEU"),
        (lambda tmp, log: ["analyze", log, "--mode", "sideways"], "sideways"),
        (lambda tmp, log: ["analyze", log, "--pue", "0.5"], "pue"),
        (lambda tmp, log: ["analyze", log, "--gpu", "Z80"], "Z80"),
        (lambda tmp, log: ["analyze", log, "--intensity", "nowhere.csv"], "nowhere.csv"),
        (lambda tmp, log: ["analyze", log, "--power-w", "300", "--gpu", "A100"], "--gpu"),
        (lambda tmp, log: ["replay", log, "--rule", "patience", "--threshold", "1"], "--threshold"),
        (lambda tmp, log: ["plot", log, "--out", tmp, "--format", "gif"], "gif"),
        (lambda tmp, log: ["report", log, "--out", tmp / "r.pdf"], "r.pdf"),
        (lambda tmp, log: ["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, train_log: Path,
                                   make_args, needle: str) -> None:
    code, out, err = run_main(capsys, *make_args(tmp_path, train_log))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "analyze" in out and "report" in out
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"carbon-callbacks {__version__}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed in this environment")
def test_console_script(train_log: Path, tmp_path: Path) -> None:
    done = subprocess.run([SCRIPT, "analyze", train_log, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["epochs"] == 10
    done = subprocess.run([SCRIPT, "analyze", tmp_path / "nope.txt"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "nope.txt" in done.stderr and "Traceback" not in done.stderr
