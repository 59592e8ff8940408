"""Start-up costs: import times, time to the first measurement, and the analyzer CLI on 100 runs.

Every number comes from fresh Python processes (median of ``--repeats``; targets interleaved), so no module
is already imported or compiled in memory; the file cache is warm (one untimed import first).

* import time: ``time.perf_counter()`` around the ``import`` statement inside the fresh process (interpreter
  start-up excluded), for the core package, the Lightning adapter (cold, and after torch + lightning are
  already imported), and the modules the ``analyze`` command loads. ``python -X importtime`` names the
  costliest third-party packages each one loads.
* first measurement: ``EnergyAccountant()`` (auto meter, world-average intensity), ``setup(directory=tmp)``,
  ``begin("probe")``, ``end("probe")``: the time from nothing to the first Measurement.
* the CLI: ``benchmarks/cli_scale.py`` (100 generated runs of 100 epochs, all at once and one at a time).

Usage::

    .venv/bin/python benchmarks/startup.py                 # about 12 min on 2 shared cores (load 3-4)
    .venv/bin/python benchmarks/startup.py --skip-cli      # imports and first measurement only (~1 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_scale  # noqa: E402  (a sibling script)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TIMEOUT_S = 300

#: label -> (untimed preparation, timed import statement)
IMPORTS: dict[str, tuple[str, str]] = {
    "carbon_callbacks (core)": ("", "import carbon_callbacks"),
    "carbon_callbacks.lightning (cold: includes torch + lightning)": ("", "import carbon_callbacks.lightning"),
    "torch + lightning.pytorch alone": ("", "import torch, lightning.pytorch"),
    "carbon_callbacks.lightning after torch + lightning": (
        "import torch, lightning.pytorch", "import carbon_callbacks.lightning"
    ),
    "carbon_callbacks.cli": ("", "import carbon_callbacks.cli"),
    "carbon_callbacks.summary (analysis, loaded by `analyze`)": ("", "import carbon_callbacks.summary"),
    "kneed (loaded by `analyze` for the knee, analysis/stats.py)": ("", "import kneed"),
}
HEAVY = ("torch", "lightning", "matplotlib", "scipy", "pandas", "speechbrain", "kneed")

_IMPORT_PROBE = """
import json, sys, time
{prep}
before = set(sys.modules)
t0 = time.perf_counter()
{stmt}
dt = time.perf_counter() - t0
new = set(sys.modules) - before
print(json.dumps({{"import_s": dt, "heavy": sorted({{m.split('.')[0] for m in new}} & set({heavy!r}))}}))
"""

_FIRST_PROBE = """
import json, tempfile, time
t0 = time.perf_counter()
from carbon_callbacks.accounting import EnergyAccountant
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    acc = EnergyAccountant()
    t2 = time.perf_counter()
    acc.setup(directory=tmp)
    t3 = time.perf_counter()
    acc.begin("probe")
    m = acc.end("probe")
    t4 = time.perf_counter()
    meter = dict(acc.meter.describe())
    acc.close()
print(json.dumps({"import_s": t1 - t0, "construct_s": t2 - t1, "setup_s": t3 - t2, "begin_end_s": t4 - t3,
                  "first_measurement_s": t4 - t1, "methods": dict(m.methods), "meter": meter}))
"""


def _python(code: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def _median(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def import_times(repeats: int) -> dict[str, Any]:
    """Median import seconds per target, targets interleaved, one fresh process each."""
    _python(_IMPORT_PROBE.format(prep="", stmt="import carbon_callbacks.lightning, carbon_callbacks.summary, kneed",
                                 heavy=HEAVY))  # warm the file cache, untimed
    samples: dict[str, list[float]] = {k: [] for k in IMPORTS}
    heavy: dict[str, list[str]] = {}
    for _ in range(repeats):
        for label, (prep, stmt) in IMPORTS.items():
            out = _python(_IMPORT_PROBE.format(prep=prep, stmt=stmt, heavy=HEAVY))
            samples[label].append(out["import_s"])
            heavy[label] = out["heavy"]
    return {label: {**_median(v), "heavy_modules_loaded": heavy[label]} for label, v in samples.items()}


def importtime_top(stmt: str, top: int = 6) -> list[tuple[str, float]]:
    """The costliest packages ``stmt`` loads (``python -X importtime``): root packages by cumulative seconds.

    Nested imports are counted inside their parent too, so the numbers overlap (scipy inside kneed, ...).
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    best: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        name = name.strip()
        if "." not in name and not name.startswith(("carbon_callbacks", "_")):
            best[name] = max(best.get(name, 0.0), int(cumulative) / 1e6)
    return sorted(best.items(), key=lambda kv: -kv[1])[:top]


def first_measurement(repeats: int) -> dict[str, Any]:
    """Median seconds from nothing to the first Measurement with the auto meter."""
    runs = [_python(_FIRST_PROBE) for _ in range(repeats)]
    out: dict[str, Any] = {k: _median([r[k] for r in runs]) for k in
                           ("import_s", "construct_s", "setup_s", "begin_end_s", "first_measurement_s")}
    out["methods"], out["meter"] = runs[0]["methods"], runs[0]["meter"]
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """Tables: imports, importtime tops, first measurement, CLI."""
    lines = [
        f"Median of {result['repeats']} fresh processes (min..max). Load average (1 min) "
        f"{result['loadavg_start']:.1f} at start, {result['loadavg_end']:.1f} at end.",
        "",
        "| import | s median (min..max) | heavy packages it loads |",
        "|---|---|---|",
    ]
    for label, r in result["imports"].items():
        lines.append(
            f"| `{label}` | {r['median']:.3f} ({r['min']:.3f}..{r['max']:.3f}) "
            f"| {', '.join(r['heavy_modules_loaded']) or 'none'} |"
        )
    lines += ["", "Costliest packages loaded (`python -X importtime`, one process, cumulative s; nested ones overlap):"]
    lines += [""]
    for stmt, top in result["importtime"].items():
        lines.append(f"* `{stmt}`: " + ", ".join(f"{name} {s:.2f}" for name, s in top))
    fm = result["first_measurement"]
    lines += [
        "",
        "Time to the first measurement (`EnergyAccountant()` with the auto meter, `setup`, `begin`, `end`), s:",
        "",
        "| import accounting | construct | setup (meter chosen and started, ledger dir) | begin + end | total "
        "(construct..end) |",
        "|---|---|---|---|---|",
        "| " + " | ".join(f"{fm[k]['median']:.4f}" for k in ("import_s", "construct_s", "setup_s", "begin_end_s",
                                                               "first_measurement_s")) + " |",
        "",
        f"Meter chosen: {fm['meter'].get('cpu', '?')} for cpu; {fm['meter'].get('gpu', '?')} for gpu; methods "
        f"{fm['methods']}.",
    ]
    if result.get("cli"):
        lines += ["", cli_scale.to_markdown(result["cli"], result["cli_text"])]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="fresh processes per import / first-measurement probe")
    p.add_argument("--skip-cli", action="store_true", help="leave out the analyze benchmark")
    p.add_argument("--cli-formats", default=",".join(cli_scale.FORMATS))
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--text", action="store_true", help="time analyze's text output instead of --json")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "startup", help="output stem (.md and .json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import os

    cfg = parse_args(argv)
    result: dict[str, Any] = {"repeats": cfg.repeats, "loadavg_start": os.getloadavg()[0]}
    result["imports"] = import_times(cfg.repeats)
    result["importtime"] = {
        stmt: importtime_top(stmt)
        for stmt in ("import carbon_callbacks", "import carbon_callbacks.lightning", "import carbon_callbacks.summary",
                     "import kneed")
    }
    result["first_measurement"] = first_measurement(cfg.repeats)
    if not cfg.skip_cli:
        cli_cfg = cli_scale.parse_args(
            ["--runs", str(cfg.runs), "--epochs", str(cfg.epochs), "--formats", cfg.cli_formats]
            + (["--text"] if cfg.text else [])
        )
        result["cli"], result["cli_text"] = cli_scale.run(cli_cfg), cfg.text
    result["loadavg_end"] = os.getloadavg()[0]
    markdown = to_markdown(result)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    cfg.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
