"""YAML path (no Python change): energy next to valid WER in train_log.txt, ledger rows, checkpoints, resume."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from carbon_callbacks.ledger import read_ledger
from carbon_callbacks.measurement import JOULES_PER_KWH
from carbon_callbacks.speechbrain import MISSING_RECOVERABLE, EnergyTracker
from tests.speechbrain import tiny_recipe as tr

DEVICE_W, HOST_W, G_PER_KWH = 100.0, 50.0, 400.0


def _meta_value(line: str, key: str) -> float:
    match = re.search(rf"(?:^|, ){re.escape(key)}: ([-+0-9.e]+)", line.split(" - ")[0])
    assert match is not None, f"{key} not in {line!r}"
    return float(match.group(1))


def _check_constant_power(rows: list) -> None:
    """ConstantPower: device energy per rank, host once; every row priced at 400 g/kWh."""
    for row in rows:
        assert row.cpu_kwh > 0
        assert row.gpu_kwh / row.cpu_kwh == pytest.approx(row.ranks * DEVICE_W / HOST_W, rel=0.25)
        if row.ranks == 1:
            assert row.gpu_kwh == pytest.approx(DEVICE_W * row.duration_s / JOULES_PER_KWH, rel=0.05, abs=1e-10)
        assert row.co2_kg == pytest.approx(row.energy_kwh * G_PER_KWH / 1000.0, rel=1e-12)


def test_train_log_has_energy_next_to_valid_wer_and_ledger_matches(tmp_path: Path) -> None:
    hparams = tr.load(tr.hparams_yaml(tmp_path), {"wer_schedule": [10.0, 20.0, 30.0]})
    tracker: EnergyTracker = hparams["energy_tracker"]
    brain = tr.run(hparams, evaluate=False)
    totals_after_fit = tracker.totals.energy_kwh
    brain_rows_before_test = len(read_ledger(tmp_path / "out" / "energy.csv"))
    # evaluate() reloads the BEST checkpoint (epoch 1 here): the totals must not go back to epoch 1's
    brain.evaluate(tr.datasets(hparams)[2], min_key="WER", test_loader_kwargs={"batch_size": 8})
    assert tracker.totals.energy_kwh > totals_after_fit

    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    assert len(lines) == 4
    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert len(rows) == brain_rows_before_test + 1
    assert [(r.epoch, r.stage) for r in rows] == [
        (1, "epoch"), (1, "overhead"), (2, "epoch"), (2, "overhead"), (3, "epoch"), (3, "overhead"), (1, "test"),
    ]
    assert {r.attempt for r in rows} == {1} and {r.run_id for r in rows} == {tracker.accountant.run_id}
    assert all(r.status == "complete" and r.world_size == 1 and r.ranks == 1 for r in rows)
    _check_constant_power(rows)
    for epoch, line in enumerate(lines[:3], start=1):
        assert line.startswith(f"epoch: {epoch}, lr: ")
        assert f"valid WER: {10.0 * epoch:.2f}" in line
        epoch_row = rows[2 * (epoch - 1)]
        assert epoch_row.metrics["valid_WER"] == 10.0 * epoch
        assert _meta_value(line, "energy_kWh") == pytest.approx(epoch_row.energy_kwh, rel=0.01)
        assert _meta_value(line, "CO2_kg") == pytest.approx(epoch_row.co2_kg, rel=0.01)
        total_through_epoch = sum(r.energy_kwh for r in rows[: 2 * (epoch - 1) + 1])
        assert _meta_value(line, "total_energy_kWh") == pytest.approx(total_through_epoch, rel=0.01)
    assert lines[3].startswith("Epoch loaded: 1, energy_kWh: ") and " - test loss: " in lines[3]
    assert _meta_value(lines[3], "energy_kWh") == pytest.approx(rows[-1].energy_kwh, rel=0.01)
    assert tracker.totals.energy_kwh == pytest.approx(sum(r.energy_kwh for r in rows), rel=1e-12)
    assert sorted(tracker.history) == [1, 2, 3]


def test_tracker_without_recoverable_warns_once_with_the_line_to_add(tmp_path: Path) -> None:
    hparams = tr.load(tr.hparams_yaml(tmp_path, recoverable=False), {"number_of_epochs": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr.run(hparams, evaluate=False)
    messages = [str(w.message) for w in caught if "recoverables" in str(w.message)]
    assert messages == [MISSING_RECOVERABLE]
    assert "energy: !ref <energy_tracker>" in messages[0]


def test_resume_continues_totals_then_budget_already_exceeded_stops_at_once(tmp_path: Path) -> None:
    path = tr.hparams_yaml(tmp_path)
    ledger = tmp_path / "out" / "energy.csv"
    tr.run(tr.load(path, {"number_of_epochs": 2}), evaluate=False)
    first_rows = read_ledger(ledger)

    resumed = tr.load(path, {"number_of_epochs": 3})
    tr.run(resumed, evaluate=False)
    rows = read_ledger(ledger)
    assert rows[: len(first_rows)] == first_rows
    assert [(r.attempt, r.epoch, r.stage) for r in rows[len(first_rows):]] == [(2, 3, "epoch"), (2, 3, "overhead")]
    assert len({r.run_id for r in rows}) == 1
    line3 = (tmp_path / "out" / "train_log.txt").read_text().splitlines()[2]
    # epoch 2's overhead row was written after epoch 2's checkpoint: the resume books it from the ledger
    assert _meta_value(line3, "total_energy_kWh") == pytest.approx(sum(r.energy_kwh for r in rows[:-1]), rel=0.01)
    total = resumed["energy_tracker"].totals.energy_kwh
    assert total == pytest.approx(sum(r.energy_kwh for r in rows), rel=1e-12)

    over = tr.load(path, {"number_of_epochs": 6, "max_kwh": total / 2})
    tr.run(over, evaluate=False)
    assert over["epoch_counter"].current == 3
    assert over["epoch_counter"].stop_reason.startswith("energy budget reached:")
    assert "max_kwh=" in over["epoch_counter"].stop_reason
    assert [(r.epoch, r.stage) for r in read_ledger(ledger)] == [(r.epoch, r.stage) for r in rows]
    assert len((tmp_path / "out" / "train_log.txt").read_text().splitlines()) == 3


def test_checkpoint_predating_the_tracker_loads_and_counts_from_there(tmp_path: Path) -> None:
    tr.run(tr.load(tr.hparams_yaml(tmp_path, energy=False), {"number_of_epochs": 2}), evaluate=False)
    # the YAML's recoverables cannot be optional: allow_partial_load lets the first resume skip `energy`
    path = tr.hparams_yaml(tmp_path, allow_partial_load=True, name="energy.yaml")
    hparams = tr.load(path, {"number_of_epochs": 3})
    with pytest.warns(UserWarning, match="resumed at epoch 2 from a checkpoint without energy state"):
        tr.run(hparams, evaluate=False)
    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert [(r.epoch, r.stage) for r in rows] == [(3, "epoch"), (3, "overhead")]
    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    assert len(lines) == 3 and "energy_kWh" not in lines[1] and "energy_kWh" in lines[2]
