"""How ``carbon-callbacks analyze`` scales: 100 generated runs of 100 epochs, analysed at once and one at a time.

Runs are generated in a temporary directory, either as our ledgers (``energy.csv`` + ``energy.meta.json``
written by :class:`carbon_callbacks.ledger.LedgerWriter`: a train and a validate row per epoch, the metric
``val_wer`` on the validate row) or as generic CSVs (``epoch, valid_WER, energy_kwh, co2_kg, duration_s``).
The curves are synthetic: WER falls exponentially towards a floor with noise, each epoch costs about the
same energy. The CLI runs as users run it, in a fresh process (``python -m carbon_callbacks.cli``, interpreter
start-up included), with ``--json`` unless ``--text`` is given. All runs go to one call (3 times); single-run
calls are timed on 10 runs spread over the set (100 single calls would take 100 x the start-up cost); the
extra cost of one more run in a call is (all-at-once - single) / (runs - 1).

Usage::

    .venv/bin/python benchmarks/cli_scale.py                   # both formats, 100 x 100, ~5 min on 2 loaded cores
    .venv/bin/python benchmarks/cli_scale.py --formats csv --runs 20
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FORMATS = ("ledger", "csv")
INTENSITY_G_PER_KWH = 56.0
CLI_TIMEOUT_S = 600


def _curve(seed: int, epochs: int) -> list[tuple[float, float, float]]:
    """(wer_percent, energy_kwh, duration_s) per epoch of one synthetic run."""
    rng = random.Random(seed)
    floor, start, tau = rng.uniform(8, 20), rng.uniform(60, 90), rng.uniform(5, 25)
    kwh, duration = rng.uniform(0.02, 0.2), rng.uniform(300, 1800)
    out = []
    for epoch in range(epochs):
        wer = floor + (start - floor) * math.exp(-epoch / tau) + rng.gauss(0, 0.4)
        out.append((max(0.0, wer), kwh * rng.uniform(0.95, 1.05), duration * rng.uniform(0.97, 1.03)))
    return out


def write_csv_run(path: Path, curve: list[tuple[float, float, float]]) -> Path:
    """One generic per-epoch CSV."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "valid_WER", "energy_kwh", "co2_kg", "duration_s"])
        for epoch, (wer, kwh, dur) in enumerate(curve):
            writer.writerow([epoch, f"{wer:.3f}", repr(kwh), repr(kwh * INTENSITY_G_PER_KWH / 1000), f"{dur:.1f}"])
    return path


def write_ledger_run(directory: Path, run_id: str, curve: list[tuple[float, float, float]]) -> Path:
    """One ledger directory, written by the package's own LedgerWriter (one fsync per row, as in training)."""
    from carbon_callbacks.ledger import LedgerWriter

    writer = LedgerWriter(directory)
    writer.write_metadata({"run_id": run_id, "intensity_source": "constant", "pue": 1.0, "meter": {}})
    t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for epoch, (wer, kwh, dur) in enumerate(curve):
        for stage, share, metrics in (("train", 0.9, {}), ("validate", 0.1, {"val_wer": wer})):
            end = t + timedelta(seconds=dur * share)
            writer.append(_row(run_id, epoch, stage, t, end, kwh * share, metrics))
            t = end
    return directory


def _row(run_id: str, epoch: int, stage: str, start: datetime, end: datetime, kwh: float, metrics: dict) -> Any:
    from carbon_callbacks.ledger import LedgerRow

    return LedgerRow(
        run_id=run_id, attempt=1, epoch=epoch, stage=stage, status="complete", start_utc=start.isoformat(),
        end_utc=end.isoformat(), duration_s=(end - start).total_seconds(), it_energy_kwh=kwh, pue=1.0,
        energy_kwh=kwh, intensity_g_per_kwh=INTENSITY_G_PER_KWH, co2_kg=kwh * INTENSITY_G_PER_KWH / 1000,
        cost=0.0, world_size=1, ranks=1, gpu_kwh=kwh * 0.8, cpu_kwh=kwh * 0.15, ram_kwh=kwh * 0.05,
        gpu_method="nvml_counter", cpu_method="rapl", ram_method="ram_w_per_gb", estimated=False,
        global_step=(epoch + 1) * 1000, metrics=metrics,
    )


def generate(root: Path, fmt: str, runs: int, epochs: int) -> list[Path]:
    """``runs`` runs of ``epochs`` epochs under ``root``; returns the paths to pass to the CLI."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(runs):
        curve = _curve(seed=i, epochs=epochs)
        if fmt == "csv":
            paths.append(write_csv_run(root / f"run{i:03d}.csv", curve))
        else:
            paths.append(write_ledger_run(root / f"run{i:03d}", f"run{i:03d}", curve))
    return paths


def time_cli(paths: list[Path], text: bool) -> tuple[float, int, str]:
    """Wall seconds of one ``carbon-callbacks analyze`` process on ``paths``; exit status; last stderr line."""
    argv = [sys.executable, "-m", "carbon_callbacks.cli", "analyze", *map(str, paths)] + ([] if text else ["--json"])
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    wall_s = time.perf_counter() - t0
    err = (proc.stderr.strip().splitlines() or [""])[-1]
    return wall_s, proc.returncode, err


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min": ordered[0],
        "max": ordered[-1],
        "sum": sum(ordered),
    }


def bench_format(fmt: str, cfg: argparse.Namespace) -> dict[str, Any]:
    """Generate, then time the CLI on all runs at once (``repeats`` times) and on single runs (a spaced sample).

    Calls alternate (all, single, single, ..., all, ...) so that load changes on a shared machine hit both.
    """
    with tempfile.TemporaryDirectory(prefix=f"cli_scale_{fmt}_") as tmp:
        t0 = time.perf_counter()
        paths = generate(Path(tmp), fmt, cfg.runs, cfg.epochs)
        generate_s = time.perf_counter() - t0
        step = max(1, len(paths) // max(1, cfg.single_calls))
        sample = paths[::step][: cfg.single_calls]
        together, alone = [], []
        for i in range(max(cfg.repeats, len(sample))):
            if i < cfg.repeats:
                together.append(time_cli(paths, cfg.text))
            if i < len(sample):
                alone.append(time_cli([sample[i]], cfg.text))
        baseline = [_interpreter_s() for _ in range(cfg.repeats)]
    failures = [f"{rc}: {err}" for _, rc, err in together + alone if rc != 0]
    all_s, one_s = _stats([w for w, _, _ in together]), _stats([w for w, _, _ in alone])
    return {
        "format": fmt,
        "runs": cfg.runs,
        "epochs": cfg.epochs,
        "generate_s": generate_s,
        "all_at_once_s": all_s,
        "single_run_s": one_s,
        "single_calls": len(alone),
        "marginal_s_per_run": (all_s["median"] - one_s["median"]) / max(1, cfg.runs - 1),
        "python_startup_s": statistics.median(baseline),
        "failures": failures[:5],
        "n_failures": len(failures),
    }


def _interpreter_s() -> float:
    """Wall seconds of ``python -c pass`` (the floor under every CLI call)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def to_markdown(results: list[dict[str, Any]], text: bool) -> str:
    """One table row per format."""
    mode = "text output" if text else "--json"
    lines = [
        f"`carbon-callbacks analyze` ({mode}), one fresh process per call (`python -m carbon_callbacks.cli`), "
        "interpreter start-up and imports included:",
        "",
        "| runs x epochs | format | all runs in one call: s median (min..max) | one run per call: s median (min..max) "
        "| extra s per additional run | `python -c pass` s | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, p = r["all_at_once_s"], r["single_run_s"]
        lines.append(
            f"| {r['runs']} x {r['epochs']} | {r['format']} | {a['median']:.2f} ({a['min']:.2f}..{a['max']:.2f}) "
            f"| {p['median']:.2f} ({p['min']:.2f}..{p['max']:.2f}), {r['single_calls']} calls "
            f"| {r['marginal_s_per_run']:.3f} | {r['python_startup_s']:.3f} "
            f"| {r['n_failures']}{': ' + r['failures'][0] if r['failures'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3, help="timings of the all-at-once call")
    p.add_argument("--single-calls", type=int, default=10, help="single-run calls (runs spread over the set)")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma list of ledger, csv")
    p.add_argument("--text", action="store_true", help="time the text output instead of --json")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "startup_cli", help="output stem (.md and .json)")
    return p.parse_args(argv)


def run(cfg: argparse.Namespace) -> list[dict[str, Any]]:
    """All formats, printed as they finish."""
    results = []
    for fmt in cfg.formats.split(","):
        if fmt not in FORMATS:
            raise SystemExit(f"--formats: {fmt!r} is not one of {', '.join(FORMATS)}")
        result = bench_format(fmt, cfg)
        print(json.dumps({k: result[k] for k in ("format", "all_at_once_s", "n_failures")}), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    results = run(cfg)
    markdown = to_markdown(results, cfg.text)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.with_suffix(".json").write_text(json.dumps({"text": cfg.text, "results": results}, indent=2) + "\n")
    cfg.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
