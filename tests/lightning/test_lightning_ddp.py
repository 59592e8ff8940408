"""Two DDP processes on CPU (gloo, ddp_spawn): every rank meters its device, the host is counted once per node."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from torch.multiprocessing.spawn import ProcessExitedException

from carbon_callbacks import ConstantPower, read_ledger
from carbon_callbacks.lightning import CarbonBudget, EnergyAwareEarlyStopping, EnergyTracker
from tests.lightning._lt_models import RankProbe, SpeechLikeModel, make_trainer

DEVICE_W, HOST_W = 10.0, 10.0  # with 2 ranks on 1 node: gpu/cpu = 2 D / H = 2 (1 if the host were counted twice)


def _fit(root):
    tracker = EnergyTracker(meter=ConstantPower(device_w=DEVICE_W, host_w=HOST_W), intensity=100.0, report=False)
    callbacks = [tracker, EnergyAwareEarlyStopping("val_wer"), CarbonBudget(max_kwh=1.0), RankProbe(root)]
    trainer = make_trainer(root, callbacks, strategy="ddp_spawn", devices=2, max_epochs=3)
    trainer.fit(SpeechLikeModel(sleep_s=0.03))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    try:
        _fit(root)
    except ProcessExitedException as exc:  # torch's gloo teardown abort at exit: see tests/_torchrun.py
        if exc.signal_name != "SIGABRT":
            raise
        root = tmp_path_factory.mktemp("ddp_again")
        _fit(root)
    ledger_dir = root / "logs" / "version_0"
    probes = [json.loads((root / f"probe_{rank}.json").read_text()) for rank in (0, 1)]
    return read_ledger(ledger_dir / "energy.csv"), pd.read_csv(ledger_dir / "metrics.csv"), probes


def test_every_row_sums_both_ranks(ddp_run):
    rows, _, _ = ddp_run
    assert [(r.epoch, r.stage) for r in rows] == [
        (0, "sanity"), (0, "train"), (0, "validate"), (1, "train"), (1, "validate"),
        (2, "train"), (2, "validate"), (2, "train"),
    ]
    assert all(r.ranks == 2 and r.world_size == 2 for r in rows)


def test_devices_of_all_ranks_and_the_host_once(ddp_run):
    rows, _, _ = ddp_run
    gpu_kwh, cpu_kwh = sum(r.gpu_kwh for r in rows), sum(r.cpu_kwh for r in rows)
    assert gpu_kwh / cpu_kwh == pytest.approx(2 * DEVICE_W / HOST_W, rel=0.2)
    for row in rows:
        if row.stage == "train" and row.duration_s > 0.05:  # long windows: rank skew is small
            assert row.gpu_kwh / row.cpu_kwh == pytest.approx(2 * DEVICE_W / HOST_W, rel=0.2)
    joules = sum(r.it_energy_kwh for r in rows) * 3.6e6
    assert joules == pytest.approx((2 * DEVICE_W + HOST_W) * sum(r.duration_s for r in rows), rel=0.2)


def test_all_ranks_agree_on_totals_and_histories(ddp_run):
    rows, _, probes = ddp_run
    first, second = probes
    assert first["cumulative_kwh"] == second["cumulative_kwh"]
    assert first["energy_history"] == second["energy_history"] and len(first["energy_history"]) == 3
    assert first["epoch_kwh"] == second["epoch_kwh"] and len(first["epoch_kwh"]) == 3
    assert first["cumulative_kwh"] == pytest.approx(sum(r.energy_kwh for r in rows), rel=1e-12)


def test_logged_totals_match_the_ledger(ddp_run):
    rows, frame, _ = ddp_run
    logged = frame[frame["val_wer"].notna()]["energy/total_wh"].tolist()
    validate_ends = [i for i, r in enumerate(rows) if r.stage == "validate"]
    expected = [sum(r.energy_kwh for r in rows[: i + 1]) * 1000 for i in validate_ends]
    assert logged == pytest.approx(expected, rel=1e-6)
