"""The append-only ledger: exact round trips, surviving a kill mid-write, crash recovery, bad directories."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_callbacks.accounting import EnergyAccountant
from carbon_callbacks.errors import ConfigError, ReadError
from carbon_callbacks.ledger import (
    LEDGER_COLUMNS,
    LEDGER_FILENAME,
    OPEN_FILENAME,
    LedgerRow,
    LedgerWriter,
    read_ledger,
    read_metadata,
)
from carbon_callbacks.meters import FakeMeter


def make_row(epoch: int = 0, **changes: object) -> LedgerRow:
    row = LedgerRow(
        run_id="run-a",
        attempt=1,
        epoch=epoch,
        stage="train",
        status="complete",
        start_utc="2024-03-04T10:30:00+00:00",
        end_utc="2024-03-04T11:30:00.123456+00:00",
        duration_s=3600.123456789,
        it_energy_kwh=0.1 + 0.2,
        pue=1.56,
        energy_kwh=(0.1 + 0.2) * 1.56,
        intensity_g_per_kwh=1 / 3,
        co2_kg=1e-300,
        cost=123456789.12345679,
        world_size=2,
        ranks=2,
        gpu_kwh=0.2,
        cpu_kwh=0.1,
        ram_kwh=5e-324,
        gpu_method="nvml_counter",
        cpu_method="rapl+extrapolated",
        ram_method="ram_w_per_gb",
        estimated=True,
        global_step=1234,
        metrics={"val_wer": 12.345678901234567, "val_loss": 0.7071067811865476},
        note='meter failed ("x"), extrapolated; wall clock moved +3 s',
    )
    return replace(row, **changes)  # type: ignore[arg-type]


def test_round_trip_keeps_every_float64_digit(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "run")
    rows = [make_row(0), make_row(1, estimated=False, metrics={}, note="", stage="validate")]
    for row in rows:
        writer.append(row)
    assert read_ledger(writer.path) == rows
    header = writer.path.read_text(encoding="utf-8").split("\n")[0]
    assert header == ",".join(LEDGER_COLUMNS)


def test_rows_written_together_share_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    writer = LedgerWriter(tmp_path)
    writer.append(make_row(0), sync=False)
    assert read_ledger(writer.path) == [make_row(0)] and not synced  # written: a killed process keeps it
    writer.append(make_row(0, stage="validate"))
    assert len(synced) == 1 and len(read_ledger(writer.path)) == 2


def test_a_newline_in_a_note_never_splits_a_row(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path)
    writer.append(make_row(0, note="first line\nsecond line\r\nthird"))
    writer.append(make_row(1))
    assert len(writer.path.read_text(encoding="utf-8").strip().split("\n")) == 3
    read = read_ledger(writer.path)
    assert [r.epoch for r in read] == [0, 1]
    assert read[0].note == "first line second line  third"


def _row_line(tmp_path: Path, row: LedgerRow) -> bytes:
    scratch = LedgerWriter(tmp_path / "scratch")
    scratch.append(row)
    return scratch.path.read_bytes().split(b"\n")[1] + b"\n"


@pytest.mark.parametrize("cut", ["early", "inside_metrics", "before_newline"])
def test_kill_mid_write_skips_the_partial_line_and_never_rewrites(tmp_path: Path, cut: str) -> None:
    writer = LedgerWriter(tmp_path / "run")
    writer.append(make_row(0))
    writer.append(make_row(1))
    line = _row_line(tmp_path, make_row(2))
    position = {"early": 25, "inside_metrics": line.index(b'val_wer') + 3, "before_newline": len(line) - 1}[cut]
    with open(writer.path, "ab") as fh:  # what a kill during the third write leaves behind
        fh.write(line[:position])
    prefix = writer.path.read_bytes()

    reopened = LedgerWriter(tmp_path / "run")
    assert [r.epoch for r in reopened.existing_rows()] == [0, 1]
    reopened.append(make_row(3))

    assert writer.path.read_bytes().startswith(prefix)
    assert read_ledger(writer.path) == [make_row(0), make_row(1), make_row(3)]


def test_heartbeat_window_becomes_an_aborted_row_at_the_next_attempt(tmp_path: Path) -> None:
    crashed = EnergyAccountant(FakeMeter(joules_per_read={"gpu": 3.6e6, "cpu": 0.0}), intensity=100.0, run_id="r1")
    crashed.setup(directory=tmp_path)
    assert crashed.start_attempt() is None
    crashed.begin("train")
    crashed.heartbeat("train", epoch=4, global_step=40, force=True)
    assert (tmp_path / OPEN_FILENAME).exists()
    # the process dies here: no end(), no close()

    resumed = EnergyAccountant(FakeMeter(joules_per_read={"gpu": 1.0}), intensity=100.0, run_id="r1")
    resumed.setup(directory=tmp_path)
    aborted = resumed.start_attempt()

    assert aborted is not None and aborted.status == "aborted"
    assert (aborted.epoch, aborted.global_step, aborted.attempt) == (4, 40, 1)
    assert aborted.it_energy_kwh == pytest.approx(1.0)  # one FakeMeter step of 3.6 MJ
    assert aborted.co2_kg == pytest.approx(0.1)
    assert "crashed" in aborted.note
    assert not (tmp_path / OPEN_FILENAME).exists()
    assert read_ledger(tmp_path / LEDGER_FILENAME) == [aborted]
    assert resumed.totals.it_energy_kwh == pytest.approx(1.0)
    assert resumed.attempt == 2
    assert read_metadata(tmp_path)["attempt"] == 2


def test_open_window_of_another_run_is_dropped(tmp_path: Path) -> None:
    other = EnergyAccountant(FakeMeter(joules_per_read={"gpu": 1.0}), intensity=1.0, run_id="other")
    other.setup(directory=tmp_path)
    other.start_attempt()
    other.begin("train")
    other.heartbeat("train", epoch=0, force=True)
    mine = EnergyAccountant(FakeMeter(joules_per_read={"gpu": 1.0}), intensity=1.0, run_id="mine")
    mine.setup(directory=tmp_path)
    assert mine.start_attempt() is None
    assert not (tmp_path / LEDGER_FILENAME).exists()


def test_directory_below_a_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot be created"):
        LedgerWriter(blocker / "run")
    with pytest.raises(ConfigError, match="cannot be created"):
        LedgerWriter(blocker)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_directory_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            LedgerWriter(locked)
    finally:
        locked.chmod(0o700)


def test_accountant_setup_checks_the_directory_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    accountant = EnergyAccountant(FakeMeter(joules_per_read={"gpu": 1.0}), intensity=1.0)
    with pytest.raises(ConfigError):
        accountant.setup(directory=blocker / "run")


def test_foreign_csv_in_the_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILENAME).write_text("epoch,kwh\n1,2\n")
    with pytest.raises(ConfigError, match="not a carbon_callbacks ledger.*move it away"):
        LedgerWriter(tmp_path).existing_rows()


def test_read_ledger_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="missing.csv: cannot read"):
        read_ledger(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ReadError, match="empty.csv: the ledger is empty"):
        read_ledger(empty)


# -- fuzzing -------------------------------------------------------------------------------------------------
_GARBAGE_CELLS = ("", "nan", "inf", "-1", "1.5", "x", '"', "[1]", "1", "{}", '{"a": "b"}', '{"a": [1]}', "true",
                  "null", "\u00e9", "1e999", ",", "\n")
_GARBAGE = st.sampled_from(_GARBAGE_CELLS)


def _edited(line: str, edits: list[tuple[int, str]]) -> str:
    """A ledger line with some cells replaced (``(column, value)``), quoted as the writer quotes."""
    cells = next(csv.reader([line]))
    for column, value in edits:
        cells[column] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue().rstrip("\n")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(LEDGER_COLUMNS) - 1), _GARBAGE), max_size=4),
       cut=st.none() | st.integers(0, 1500), rows=st.integers(1, 3))
def test_read_ledger_fuzz_skips_bad_rows_and_never_crashes(
    tmp_path: Path, edits: list[tuple[int, str]], cut: int | None, rows: int
) -> None:
    """Good rows with some cells replaced by garbage and the file cut anywhere: only well-formed rows come back."""
    path = tmp_path / LEDGER_FILENAME
    path.unlink(missing_ok=True)
    writer = LedgerWriter(tmp_path)
    for epoch in range(rows):
        writer.append(make_row(epoch), sync=False)
    header, *lines = path.read_text(encoding="utf-8").split("\n")
    text = "\n".join([header, _edited(lines[0], edits), *lines[1:]])
    path.write_text(text if cut is None else text[: len(header) + 1 + cut], encoding="utf-8")
    try:
        got = read_ledger(path)
    except ReadError:
        return
    assert len(got) <= rows
    assert all(isinstance(r.metrics, dict) and all(isinstance(v, float) for v in r.metrics.values()) for r in got)


def test_any_one_garbage_cell_skips_that_row_or_reads_it(tmp_path: Path) -> None:
    """Every column, every garbage value, between two good rows: the good rows are always read."""
    writer = LedgerWriter(tmp_path)
    for epoch in range(3):
        writer.append(make_row(epoch), sync=False)
    header, first, middle, last, _ = (tmp_path / LEDGER_FILENAME).read_text(encoding="utf-8").split("\n")
    for column, name in enumerate(LEDGER_COLUMNS):
        for value in _GARBAGE_CELLS:
            path = tmp_path / f"fuzz_{column}.csv"
            path.write_text("\n".join([header, first, _edited(middle, [(column, value)]), last, ""]), encoding="utf-8")
            epochs = [r.epoch for r in read_ledger(path)]
            assert epochs[0] == 0 and epochs[-1] == 2 and len(epochs) in (2, 3), (name, value, epochs)


@pytest.mark.parametrize("content", [b"[1, 2]", b'"x"', b"null", b"{", b"\xff\xfe", b""])
def test_metadata_that_is_not_a_json_object_reads_as_none(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "energy.meta.json").write_bytes(content)
    assert read_metadata(tmp_path) == {}
