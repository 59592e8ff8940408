"""Readers: every format, every real curve file, energy inference, and fuzzing of the text readers."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_callbacks.analysis.readers import detect_format, gpu_power_w, load_run
from carbon_callbacks.analysis.readers_common import parse_duration_s
from carbon_callbacks.analysis.readers_speechbrain import parse_speechbrain_text
from carbon_callbacks.analysis.run import Run
from carbon_callbacks.errors import ConfigError, ReadError
from carbon_callbacks.ledger import LedgerRow, LedgerWriter
from tests._mutate import damaged

DATA = Path(__file__).parent / "data"


def ledger_row(epoch: int, stage: str, it_kwh: float, *, attempt: int = 0, status: str = "complete",
               metrics: dict[str, float] | None = None, pue: float = 1.5, g: float = 400.0) -> LedgerRow:
    """One ledger row with the accountant's arithmetic (facility = IT x PUE, CO2 = facility x g / 1000)."""
    energy = it_kwh * pue
    return LedgerRow(
        run_id="r1", attempt=attempt, epoch=epoch, stage=stage, status=status,
        start_utc=f"2025-01-01T0{max(epoch, 0)}:00:00+00:00", end_utc=f"2025-01-01T0{max(epoch, 0)}:30:00+00:00",
        duration_s=1800.0, it_energy_kwh=it_kwh, pue=pue, energy_kwh=energy, intensity_g_per_kwh=g,
        co2_kg=energy * g / 1000, cost=energy * 0.2, world_size=1, ranks=1, gpu_kwh=it_kwh * 0.8,
        cpu_kwh=it_kwh * 0.15, ram_kwh=it_kwh * 0.05, gpu_method="nvml_counter", cpu_method="rapl",
        ram_method="rapl", estimated=False, global_step=0, metrics=metrics or {}, note="",
    )


def make_ledger(directory: Path) -> Path:
    """A two-attempt run: a sanity window, a crash in epoch 1 (aborted row), a repeated epoch 1, a test window."""
    writer = LedgerWriter(directory)
    rows = [
        ledger_row(-1, "sanity", 0.001),
        ledger_row(0, "train", 0.010),
        ledger_row(0, "validate", 0.002, metrics={"val_wer": 40.0}),
        ledger_row(1, "train", 0.004, status="aborted"),
        ledger_row(1, "train", 0.010, attempt=1),
        ledger_row(1, "validate", 0.002, attempt=1, metrics={"val_wer": 30.0}),
        ledger_row(2, "train", 0.010, attempt=1),
        ledger_row(2, "validate", 0.002, attempt=1, metrics={"val_wer": 29.0}),
        ledger_row(2, "test", 0.003, attempt=1, metrics={"test_wer": 31.0}),
    ]
    for row in rows:
        writer.append(row)
    writer.write_metadata({"intensity_source": "explicit 400 g/kWh", "pue": 1.5, "price_per_kwh": 0.2})
    return directory


# -- ledger --------------------------------------------------------------------------------------------------
def test_ledger_sums_every_attempt_and_sets_test_windows_apart(tmp_path: Path) -> None:
    run = load_run(make_ledger(tmp_path / "run"))
    assert run.format == "ledger" and run.name == "run"
    assert run.epochs == (0, 1, 2)
    assert run.energy_kwh == pytest.approx([0.012 * 1.5, 0.016 * 1.5, 0.012 * 1.5])  # aborted 0.004 counted once
    assert run.co2_kg == pytest.approx([e * 0.4 for e in run.energy_kwh])
    assert run.unattributed_kwh == pytest.approx((0.001 + 0.003) * 1.5)
    assert run.unattributed_co2_kg == pytest.approx(run.unattributed_kwh * 0.4)
    assert run.metric("val_wer").tolist() == [40.0, 30.0, 29.0]
    assert "test_wer" not in run.metrics
    assert run.stage_kwh["train"] == pytest.approx([0.015, 0.021, 0.015])
    assert run.component_kwh["gpu"] == pytest.approx([0.8 * e for e in run.energy_kwh])
    assert run.energy_basis == "measured" and not run.energy_is_estimated
    assert "aborted" in run.energy_note and "nvml_counter" in run.energy_note
    assert run.cost == pytest.approx([e * 0.2 for e in run.energy_kwh])
    assert run.intensity_g_per_kwh == pytest.approx(400.0)
    assert run.pue == 1.5 and run.start_utc is not None


def test_ledger_last_attempt_metric_wins(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path)
    writer.append(ledger_row(0, "validate", 0.002, attempt=0, metrics={"val_wer": 50.0}))
    writer.append(ledger_row(0, "validate", 0.002, attempt=1, metrics={"val_wer": 45.0}))
    run = load_run(tmp_path / "energy.csv")
    assert run.metric("val_wer").tolist() == [45.0]
    assert run.energy_kwh == pytest.approx([0.006])


def test_ledger_repriced_on_request(tmp_path: Path) -> None:
    run = load_run(make_ledger(tmp_path), intensity=50.0, pue=1.1)
    assert run.energy_kwh[0] == pytest.approx(0.012 * 1.1)
    assert run.co2_kg[0] == pytest.approx(0.012 * 1.1 * 0.05)
    assert run.intensity_g_per_kwh == pytest.approx(50.0)


def test_ledger_without_epoch_rows_is_a_read_error(tmp_path: Path) -> None:
    LedgerWriter(tmp_path).append(ledger_row(-1, "sanity", 0.001))
    with pytest.raises(ReadError, match="no training-epoch row"):
        load_run(tmp_path)


def test_committed_ledger_fixture_reads() -> None:
    run = load_run(DATA / "ledger_tiny")
    assert run.format == "ledger" and len(run) == 3


# -- Lightning -----------------------------------------------------------------------------------------------
def test_lightning_merges_rows_and_keeps_the_resumed_copy() -> None:
    run = load_run(DATA / "lightning_tiny")
    assert run.format == "lightning_csv" and run.name == "lightning_tiny"
    assert run.epochs == (0, 1, 2, 3, 4)
    assert "epoch 2 repeated: kept the last copy" in run.notes
    assert run.metric("val_wer")[0] == pytest.approx(36.044185638427734)
    assert run.metric("train_loss_epoch")[4] == pytest.approx(0.22421763837337494)
    assert "train_loss_step" not in run.metrics and "energy/epoch_wh" not in run.metrics
    assert run.energy_basis == "measured"
    assert run.energy_kwh[0] == pytest.approx(0.0105)
    assert run.co2_kg[1] == pytest.approx(4.604e-3)
    assert run.stage_kwh["validate"][0] == pytest.approx(0.0005)
    assert run.infer_metric() == ("val_wer", "min")


def test_lightning_without_energy_columns_uses_equal_energy(tmp_path: Path) -> None:
    for version in ("version_0", "version_1"):
        text = (DATA / "lightning_tiny" / version / "metrics.csv").read_text().splitlines()
        (tmp_path / version).mkdir()
        kept = [",".join(line.split(",")[4:]) for line in text]  # drop the four energy/co2 columns
        (tmp_path / version / "metrics.csv").write_text("\n".join(kept) + "\n")
    run = load_run(tmp_path)
    assert run.energy_basis == "equal" and run.energy_kwh == (1.0,) * 5
    assert "fractions only" in run.energy_note


# -- SpeechBrain ---------------------------------------------------------------------------------------------
def test_every_real_curve_file_reads(curves_dir: Path) -> None:
    files = sorted(curves_dir.glob("*.txt"))
    assert len(files) >= 40
    for file in files:
        run = load_run(file)
        assert len(run) >= 1, file
        name, mode = run.infer_metric()
        assert np.isfinite(run.metric(name)).any(), file
        assert all(e > 0 for e in run.energy_kwh), file


def test_inline_time_durations_and_units(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_asr_cv_de_wav2vec2_ctc_sangeet.txt", gpu="A100")
    assert run.format == "speechbrain" and len(run) == 45
    assert run.duration_s[0] == 5 * 3600 + 33 * 60
    assert run.energy_basis == "duration" and run.energy_is_estimated
    assert run.energy_kwh[0] == pytest.approx(run.duration_s[0] * 400 / 3.6e6)
    assert "A100" in run.energy_note
    assert run.infer_metric() == ("valid_WER", "min")
    assert run.metric("valid_WER")[-1] == 8.02
    assert any("valid_WER in percent" in n for n in run.notes)
    assert run.metadata["test"]["test_WER"] == 9.54


def test_log_txt_timestamps_give_durations(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_speakerid_duartemoura_1986.txt", power_w=250, n_gpus=2)
    assert run.duration_s[0] == pytest.approx(28.72, abs=0.01)  # 12:00:16.408 -> 12:00:45.128
    assert run.energy_kwh[0] == pytest.approx(28.72 * 500 / 3.6e6, rel=1e-3)
    assert run.start_utc is not None and run.start_utc[0] is not None


def test_gap_between_train_logger_lines_for_old_logs(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_asr_crdnn_ctc_toy_hammaad_v2.txt")
    assert run.duration_s[1] == pytest.approx(316.588)  # 21:15:45.235 -> 21:21:01.823
    assert any("median" in n for n in run.notes)  # epoch 1 has no start


def test_missing_epochs_are_noted(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_asr_librispeech_conformer_small_tauadp.txt")
    assert 10 not in run.epochs and 28 in run.epochs
    assert any("10-27 missing" in n for n in run.notes)
    wer = run.metric("valid_WER")
    assert np.isnan(wer[0]) and wer[run.epochs.index(30)] == 97.03


def test_sepformer_si_snr_is_a_loss(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sb_enh_dns_sepformer_sangeet.txt")
    assert run.infer_metric() == ("valid_si-snr", "min")
    assert run.infer_metric("valid_pesq") == ("valid_pesq", "max")


def test_ecapa_score_file(curves_dir: Path) -> None:
    run = load_run(curves_dir / "sv_ecapa_vlsp23_an810.txt")
    assert run.format == "ecapa_score" and len(run) == 23
    assert run.infer_metric() == ("valid_EER", "min")
    assert run.metric("valid_EER")[0] == 4.4 and "bestEER" not in run.metrics


def test_repeated_and_garbled_speechbrain_lines(tmp_path: Path) -> None:
    log = tmp_path / "train_log.txt"
    log.write_text(
        "epoch: 1, lr: 1.00e-03 - train loss: 2.0 - valid loss: 1.5, valid WER: 40.0\n"
        "epoch: 2, lr: 1.00e-03 - train loss: 1.0 - valid loss: 1.2, valid WER: 35.0\n"
        "%%% garbage %%%\n"
        "epoch: 2, lr: 1.00e-03 - train loss: 1.1 - valid loss: 1.1, valid WER: 33.0\n"
        "epoch: 3, time: 53.2s, energy_kWh: 0.5, CO2_kg: 0.1 - train loss: x - valid WER: 30.0\n"
        "Epoch loaded: 2 - test loss: 1.0, test WER: 34.0\n"
    )
    run = load_run(tmp_path)
    assert run.epochs == (1, 2) and run.metric("valid_WER").tolist() == [40.0, 33.0]
    assert "epoch 2 repeated: kept the last copy" in run.notes
    assert "skipped 2 garbled lines" in run.notes


def test_our_speechbrain_energy_fields_are_used(tmp_path: Path) -> None:
    log = tmp_path / "train_log.txt"
    log.write_text(
        "epoch: 1, lr: 1.0, energy_kWh: 0.5, CO2_kg: 0.2 - train loss: 2.0 - valid loss: 1.5, valid WER: 40.0\n"
        "epoch: 2, lr: 1.0, energy_kWh: 0.25, CO2_kg: 0.1 - train loss: 1.0 - valid loss: 1.2, valid WER: 35.0\n"
    )
    run = load_run(log)
    assert run.energy_basis == "measured"
    assert run.energy_kwh == (0.5, 0.25) and run.co2_kg == (0.2, 0.1)
    assert load_run(log, intensity=100.0).co2_kg == pytest.approx((0.05, 0.025))


# -- generic CSV ---------------------------------------------------------------------------------------------
def test_generic_csv(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    path.write_text("epoch,dev_cer,energy_kwh\n1,12.0,0.5\n2,10.0,0.5\n2,9.5,0.6\n3,,0.5\n")
    run = load_run(path, name="mine")
    assert run.name == "mine" and run.format == "generic_csv"
    assert run.epochs == (1, 2, 3) and run.energy_kwh == (0.5, 0.6, 0.5)
    assert math.isnan(run.metric("dev_cer")[2])
    assert run.infer_metric() == ("dev_cer", "min")


def test_generic_csv_with_durations_only(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    path.write_text("epoch,acc,duration_s\n0,0.5,3600\n1,0.6,1h\n")
    run = load_run(path, gpu="T4", intensity=100.0, pue=1.2)
    assert run.energy_basis == "duration"
    assert run.energy_kwh == pytest.approx((0.07 * 1.2, 0.07 * 1.2))
    assert run.co2_kg == pytest.approx((0.0084, 0.0084))
    assert run.infer_metric() == ("acc", "max")


# -- errors and helpers --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("", ".txt", "not a ledger"),
        ("epoch,foo\n", ".csv", "no training epoch"),
        ("epoch,note\n1,abc\n", ".csv", "no metric"),
        ("step,wer\n1,2\n", ".csv", "no 'epoch' column"),
        ("hello world\n", ".txt", "not a ledger"),
    ],
)
def test_read_errors_name_the_file(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ReadError, match=message) as info:
        load_run(path)
    assert str(path) in str(info.value)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="no such file"):
        load_run(tmp_path / "absent.txt")
    with pytest.raises(ReadError, match="nothing to read"):
        load_run(tmp_path)


def test_bad_power_arguments(curves_dir: Path) -> None:
    file = curves_dir / "sb_asr_sar_tradr_crdnn_seq2seq_sangeet.txt"
    with pytest.raises(ConfigError, match="not in the power table"):
        load_run(file, gpu="Voodoo 5")
    with pytest.raises(ConfigError, match="not both"):
        load_run(file, gpu="A100", power_w=300)
    with pytest.raises(ConfigError, match="n_gpus"):
        load_run(file, n_gpus=0)
    with pytest.raises(ConfigError, match="pue"):
        load_run(file, pue=0.5)


def test_gpu_table_and_durations() -> None:
    assert gpu_power_w("NVIDIA A100-SXM4-80GB") == 400.0
    assert gpu_power_w("Tesla V100") == 300.0
    assert gpu_power_w("GeForce RTX 3090") == 350.0
    assert gpu_power_w("A100 PCIe") == 250.0
    assert parse_duration_s("05:33:00") == 19980
    assert parse_duration_s("00:16") == 16
    assert parse_duration_s("5h33m") == 19980
    assert parse_duration_s("53.2s") == pytest.approx(53.2)
    assert math.isnan(parse_duration_s("soon"))


def test_detect_format(tmp_path: Path, curves_dir: Path) -> None:
    assert detect_format(DATA / "lightning_tiny") == "lightning_csv"
    assert detect_format(DATA / "lightning_tiny" / "version_0" / "metrics.csv") == "lightning_csv"
    assert detect_format(curves_dir / "sb_speakerid_duartemoura_1986.log.txt") == "speechbrain"
    assert detect_format(curves_dir / "sv_ecapa_vlsp23_an810.txt") == "ecapa_score"
    shutil.copy(curves_dir / "sb_asr_voicebank_ctc_phn_sangeet.txt", tmp_path / "train_log.txt")
    assert detect_format(tmp_path) == "speechbrain"


def test_run_validates_lengths() -> None:
    with pytest.raises(ConfigError, match="energy_kwh has 1 values for 2 epochs"):
        Run("x", "x", "generic_csv", (1, 2), (1.0,), (1.0, 1.0), (0.0, 0.0), {})
    with pytest.raises(ConfigError, match="strictly increasing"):
        Run("x", "x", "generic_csv", (2, 1), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0), {})


# -- fuzzing -------------------------------------------------------------------------------------------------
_LINE_PIECES = st.sampled_from(
    ["epoch: ", "Epoch: ", "Epoch loaded: ", " - ", ", ", "train ", "valid ", "test ", "loss: ", "WER: ", "time: ",
     "energy_kWh: ", "1", "2.5e-01", "nan", "-", ":", "%", "x", "\t", "05:33:00", "1h", "inf", "1e999", "\u00e9"]
)
_TEXT = st.lists(st.lists(_LINE_PIECES, max_size=14).map("".join), max_size=12).map("\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT | st.text(max_size=300))
def test_speechbrain_reader_fuzz(tmp_path: Path, text: str) -> None:
    parse_speechbrain_text(text)  # pure parser: never raises
    path = tmp_path / "train_log.txt"
    path.write_text(text, encoding="utf-8", errors="replace")
    try:
        run = load_run(path)
    except ReadError:
        return
    assert len(run) >= 1 and all(e > 0 for e in run.energy_kwh)


_CELLS = st.sampled_from(["1", "2", "0.5", "", "nan", "x", "-3", "1e400", '"', "1,2", "epoch", "3.0"])
_CSV = st.lists(st.lists(_CELLS, min_size=1, max_size=4).map(",".join), max_size=8).map(
    lambda rows: "\n".join(["epoch,wer,energy_kwh,duration_s", *rows])
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_CSV | st.text(max_size=200))
def test_generic_reader_fuzz(tmp_path: Path, text: str) -> None:
    path = tmp_path / "curve.csv"
    path.write_text(text, encoding="utf-8", errors="replace")
    try:
        run = load_run(path)
    except ReadError:
        return
    assert len(run) >= 1


def test_ledger_basis_names_what_was_measured_and_what_estimated(tmp_path: Path) -> None:
    from carbon_callbacks.analysis.readers_ledger import _basis

    base = ledger_row(0, "train", 0.01)
    mixed = [base, replace(base, ram_method="ram_w_per_gb", estimated=True)]
    basis, text = _basis(mixed)
    assert basis == "estimated"
    assert "measured by the meters (cpu: rapl, gpu: nvml_counter, ram: rapl)" in text
    assert "estimated by the meters (ram: ram_w_per_gb)" in text
    extrapolated = [replace(base, gpu_method="nvml_counter+extrapolated")]
    assert _basis(extrapolated)[0] == "estimated"


_ECAPA_TEXT = "\n".join(
    f"{e} epoch, LR 0.00{100 - e}, LOSS {3.6 - e / 10:.6f}, ACC {47 + e}.27%, EER {4.4 + e / 5:.2f}%, bestEER 4.40%"
    for e in range(1, 9)
)
_SPEECHBRAIN_TEXT = "\n".join(
    f"epoch: {e}, lr: 1.00e+00 - train loss: {3 - e / 4:.2f} - valid loss: {2 - e / 5:.2f}, valid WER: {50 - 3 * e:.2f}"
    for e in range(1, 9)
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("version_0/metrics.csv", (DATA / "lightning_tiny" / "version_0" / "metrics.csv").read_text("utf-8")),
        ("energy.csv", (DATA / "ledger_tiny" / "energy.csv").read_text("utf-8")),
        ("score.txt", _ECAPA_TEXT),
        ("train_log.txt", _SPEECHBRAIN_TEXT),
    ],
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_logs_read_or_fail_with_a_read_error(tmp_path: Path, name: str, text: str,
                                                     data: st.DataObject) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data.draw(damaged(text)), encoding="utf-8", errors="replace")
    try:
        run = load_run(path, power_w=300.0)
    except ReadError:
        return
    assert len(run) >= 1 and all(np.isfinite(run.energy_kwh)) and all(np.isfinite(run.co2_kg))


@pytest.mark.parametrize("meta", ["[1, 2]", "null", '{"meter": 5, "versions": [1], "pue": "high", "price_per_kwh": []}'])
def test_a_ledger_reads_whatever_its_metadata_file_holds(tmp_path: Path, meta: str) -> None:
    shutil.copy(DATA / "ledger_tiny" / "energy.csv", tmp_path / "energy.csv")
    (tmp_path / "energy.meta.json").write_text(meta, encoding="utf-8")
    assert len(load_run(tmp_path)) == len(load_run(DATA / "ledger_tiny"))
