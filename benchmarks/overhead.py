"""Overhead of energy tracking on a Lightning training loop with many short steps.

The same loop (a small MLP on random data, one CPU thread, no logger, no checkpoints, no progress bar) runs in
a fresh process per arm:

* ``none``: no tracking (the reference);
* ``empty``: an empty ``Callback`` (Lightning's own cost of dispatching every hook to one more callback);
* ``energytracker``: ``carbon_callbacks.lightning.EnergyTracker(report=False)``, otherwise its defaults;
* ``codecarbon``: ``OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error")``,
  started before ``fit`` and stopped after;
* ``carbontracker``: ``CarbonTracker(epochs=N, log_dir=<tmp>, verbose=0)`` with its epoch API
  (``epoch_start`` / ``epoch_end`` in ``on_train_epoch_start`` / ``on_train_epoch_end``), stopped after ``fit``.

Arms run interleaved (``none, empty, energytracker, codecarbon, carbontracker, none, ...``), so slow phases of a
shared machine hit every arm alike. The timed region is: construct the tracker, build the ``Trainer``, ``fit``,
stop the tracker. The tracker's library import is timed separately. Per round, each arm's time is divided by
that round's ``none`` time; the table gives the median of these ratios and their spread (min..max).

Peak memory is ``ru_maxrss`` (peak resident set of the child process) at the end of the timed region; the
table gives the median peak and its difference from ``none``. The end-of-fit report of ``EnergyTracker``
(``report=True``) is timed separately, after the peak is read. Time spent inside EnergyTracker's own hooks is
measured by wrapping them (perf_counter around each call), a low-noise direct estimate of its cost.

Usage::

    .venv/bin/python benchmarks/overhead.py                      # CPU, 5 rounds, ~5 min on 2 shared cores
    .venv/bin/python benchmarks/overhead.py --accelerator gpu    # on a CUDA machine (writes overhead_gpu.*)
    .venv/bin/python benchmarks/overhead.py --profile            # cProfile of one EnergyTracker run
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ARMS = ("none", "empty", "energytracker", "codecarbon", "carbontracker")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHILD_TIMEOUT_S = 300
#: on_train_batch_start, on_before_backward, on_after_backward, on_before_optimizer_step, on_before_zero_grad,
#: on_train_batch_end: the callback hooks Lightning 2.6 calls at every training step (one optimizer).
HOOKS_PER_STEP = 6


# ---------------------------------------------------------------------------------------------------------------
# child: one arm, one process


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    for name in ("lightning.pytorch", "lightning.fabric", "codecarbon", "carbontracker"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _loaders(cfg: argparse.Namespace) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(0)
    n_train, n_val = cfg.steps_per_epoch * cfg.batch_size, cfg.val_batches * cfg.batch_size
    x = torch.randn(n_train + n_val, cfg.features, generator=gen)
    y = torch.randint(0, 10, (n_train + n_val,), generator=gen)
    train = TensorDataset(x[:n_train], y[:n_train])
    val = TensorDataset(x[n_train:], y[n_train:])
    return DataLoader(train, batch_size=cfg.batch_size), DataLoader(val, batch_size=cfg.batch_size)


def _module(features: int, hidden: int) -> Any:
    import torch
    import lightning.pytorch as pl

    class MLP(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return MLP()


class _HookTimer:
    """Wraps the ``Callback`` hooks that ``cls`` overrides with perf_counter, on ``cls`` itself; seconds per hook.

    Each arm runs in its own process, so patching the class touches nothing else, and the callback still sees
    its own hooks as its class's: hooks set to None, on the class or for a while on the object (both skipped by
    Lightning), stay skipped as without timing."""

    def __init__(self, cls: type, base: type) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        hooks = [n for n, fn in vars(cls).items() if callable(fn) and n in vars(base) and callable(vars(base)[n])]
        for name in hooks:
            setattr(cls, name, self._wrap(name, vars(cls)[name]))

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def _import_arm(arm: str) -> Any:
    """Import what the arm needs (timed by the caller); returns the module or class used."""
    if arm == "energytracker":
        from carbon_callbacks.lightning import EnergyTracker

        return EnergyTracker
    if arm == "codecarbon":
        from codecarbon import OfflineEmissionsTracker

        return OfflineEmissionsTracker
    if arm == "carbontracker":
        from carbontracker.tracker import CarbonTracker

        return CarbonTracker
    return None


def _arm_callbacks(arm: str, lib: Any, cfg: argparse.Namespace, workdir: Path) -> tuple[list[Any], Callable[[], dict]]:
    """The callbacks for the Trainer and a ``stop()`` that ends tracking and returns what was measured."""
    from lightning.pytorch.callbacks import Callback

    if arm == "none":
        return [], dict
    if arm == "empty":
        return [type("Empty", (Callback,), {})()], dict
    if arm == "energytracker":
        timer = _HookTimer(lib, Callback)
        tracker = lib(report=False)

        def stop_et() -> dict:
            return {
                "energy_kwh": tracker.accountant.totals.energy_kwh,
                "hook_s": dict(timer.seconds),
                "hook_calls": dict(timer.calls),
            }

        return [tracker], stop_et
    if arm == "codecarbon":
        cc = lib(country_iso_code="FRA", save_to_file=False, log_level="error")
        cc.start()

        def stop_cc() -> dict:
            kg = cc.stop()
            return {"energy_kwh": float(cc.final_emissions_data.energy_consumed), "co2_kg": float(kg or 0.0)}

        return [], stop_cc
    ct = lib(epochs=cfg.epochs, log_dir=str(workdir / "carbontracker"), verbose=0)
    box: dict[str, float] = {}

    class EpochAPI(Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            ct.epoch_start()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if ct.epoch_counter == cfg.epochs:  # the last epoch_end deletes the thread: read the energy first
                ct.tracker.epoch_end()
                box["energy_kwh"] = float(ct.tracker.total_energy_per_epoch().sum())
                ct.tracker.epoch_times.pop()
            ct.epoch_end()

    def stop_ct() -> dict:
        ct.stop()
        return dict(box)

    return [EpochAPI()], stop_ct


def run_child(arm: str, cfg: argparse.Namespace, time_report: bool = True) -> dict[str, Any]:
    """One arm in this process; returns timings, peak memory and what the tracker measured."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    import lightning.pytorch as pl

    _quiet()
    train, val = _loaders(cfg)
    module = _module(cfg.features, cfg.hidden)
    rss_base = _maxrss_mib()
    t0 = time.perf_counter()
    lib = _import_arm(arm)
    import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix=f"overhead_{arm}_") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)  # whatever a tracker writes by default lands in the temp dir
        marks = [(time.perf_counter(), _cpu_s())]
        callbacks, stop = _arm_callbacks(arm, lib, cfg, workdir)
        trainer = pl.Trainer(
            accelerator=cfg.accelerator, devices=1, max_epochs=cfg.epochs, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=str(workdir), callbacks=callbacks,
        )
        marks.append((time.perf_counter(), _cpu_s()))
        trainer.fit(module, train, val)
        marks.append((time.perf_counter(), _cpu_s()))
        measured = stop()
        marks.append((time.perf_counter(), _cpu_s()))
        rss_peak = _maxrss_mib()
        report_s = _time_report(callbacks[0], trainer, module) if arm == "energytracker" and time_report else None
    (w0, c0), (w1, c1), (w2, c2), (w3, c3) = marks
    return {
        "arm": arm, "wall_s": w3 - w0, "cpu_s": c3 - c0, "fit_wall_s": w2 - w1, "fit_cpu_s": c2 - c1,
        "start_s": w1 - w0, "stop_s": w3 - w2, "import_s": import_s, "maxrss_mib": rss_peak,
        "maxrss_base_mib": rss_base, "steps": trainer.global_step, "report_s": report_s,
        "measured": measured,
    }


def _time_report(tracker: Any, trainer: Any, module: Any) -> float | None:
    """Seconds that ``EnergyTracker(report=True)`` adds at the end of fit: its ``on_fit_end`` with report on.

    None when no report file appeared (the report writer is unavailable or skipped the run).
    """
    directory = tracker.ledger_dir
    before = set(directory.iterdir()) if directory is not None and directory.is_dir() else set()
    tracker.report = True
    t0 = time.perf_counter()
    inspect.unwrap(type(tracker).on_fit_end)(tracker, trainer, module)  # the hook, not the timing wrapper
    elapsed = time.perf_counter() - t0
    after = set(directory.iterdir()) if directory is not None and directory.is_dir() else set()
    return elapsed if after - before else None


# ---------------------------------------------------------------------------------------------------------------
# micro: per-call costs of what Lightning calls on the tracker at every training step


def _per_call_us(fn: Callable[[], Any], number: int = 20000) -> float:
    import timeit

    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _dispatch(trainer: Any, callback: Any, hook: str, *args: Any) -> Callable[[], None]:
    """What ``lightning.pytorch.trainer.call._call_callback_hooks`` does for one callback and one hook."""

    def call() -> None:
        fn = getattr(callback, hook)
        if callable(fn):
            with trainer.profiler.profile(f"[Callback]{callback.state_key}.{hook}"):
                fn(trainer, trainer.lightning_module, *args)

    return call


def run_micro(cfg: argparse.Namespace) -> dict[str, float]:
    """Per-call microseconds (best of 5 x 20000) measured in the middle of a real ``fit`` with EnergyTracker."""
    import torch

    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from carbon_callbacks.lightning import EnergyTracker

    _quiet()
    train, val = _loaders(cfg)
    tracker, empty, out = EnergyTracker(report=False), type("Empty", (Callback,), {})(), {}

    class Probe(Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx != 50 or out:
                return
            step = (outputs, batch, batch_idx)
            probes: dict[str, Callable[[], Any]] = {
                "EnergyTracker.on_train_batch_end (body)": lambda: tracker.on_train_batch_end(
                    trainer, pl_module, *step
                ),
                "EnergyTracker.state_key": lambda: tracker.state_key,
                "Callback.state_key (default)": lambda: empty.state_key,
                "dispatch of a skipped hook (None) to EnergyTracker": _dispatch(
                    trainer, tracker, "on_before_backward", None
                ),
                "dispatch of a no-op hook to an empty Callback": _dispatch(trainer, empty, "on_before_backward", None),
                "dispatch of on_train_batch_end to EnergyTracker": _dispatch(
                    trainer, tracker, "on_train_batch_end", *step
                ),
            }
            out.update({name: _per_call_us(fn) for name, fn in probes.items()})

    with tempfile.TemporaryDirectory(prefix="overhead_micro_") as tmp:
        trainer = pl.Trainer(
            accelerator=cfg.accelerator, devices=1, max_epochs=1, limit_train_batches=60, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=tmp, callbacks=[tracker, empty, Probe()],
        )
        trainer.fit(_module(cfg.features, cfg.hidden), train, val)
    return out


# ---------------------------------------------------------------------------------------------------------------
# parent: interleave arms in fresh processes, summarise


def _child_argv(arm: str, cfg: argparse.Namespace) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", arm]
    for key in ("epochs", "steps_per_epoch", "val_batches", "batch_size", "features", "hidden", "accelerator"):
        argv += [f"--{key.replace('_', '-')}", str(getattr(cfg, key))]
    return argv


def _spawn(arm: str, cfg: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run(_child_argv(arm, cfg), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"arm": arm, "error": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"arm": arm, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def _quantiles(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    """Per arm: medians, per-round ratios to ``none`` (median, min, max), peak memory, import time."""
    rounds: dict[int, dict[str, dict]] = {}
    for run in runs:
        if "error" not in run:
            rounds.setdefault(run["round"], {})[run["arm"]] = run
    out: dict[str, Any] = {}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm and "error" not in r]
        errors = [r["error"] for r in runs if r["arm"] == arm and "error" in r]
        out[arm] = {"n": len(mine), "errors": errors}
        if mine:
            paired = [(rd[arm], rd["none"]) for rd in rounds.values() if arm in rd and "none" in rd]
            out[arm].update(_arm_summary(mine, paired))
    base_rss = out.get("none", {}).get("maxrss_mib")
    for arm in arms:
        if out[arm]["n"] and base_rss is not None:
            out[arm]["maxrss_delta_mib"] = out[arm]["maxrss_mib"] - base_rss
    return out


def _arm_summary(mine: list[dict], paired: list[tuple[dict, dict]]) -> dict[str, Any]:
    """Medians of one arm, and its per-round ratios / differences to the ``none`` run of the same round."""
    out: dict[str, Any] = {}
    for key in ("wall_s", "cpu_s", "fit_wall_s", "fit_cpu_s"):
        out[key] = _quantiles([r[key] for r in mine])
        out[key.replace("_s", "_ratio")] = _quantiles([a[key] / b[key] for a, b in paired])
    out["fit_extra_us_per_step"] = _quantiles(
        [1e6 * (a["fit_wall_s"] - b["fit_wall_s"]) / max(1, a["steps"]) for a, b in paired]
    )
    out["fixed_s"] = _quantiles([r["start_s"] + r["stop_s"] for r in mine])
    out["fixed_extra_s"] = _quantiles([a["start_s"] + a["stop_s"] - b["start_s"] - b["stop_s"] for a, b in paired])
    out["import_s"] = statistics.median(r["import_s"] for r in mine)
    out["maxrss_mib"] = statistics.median(r["maxrss_mib"] for r in mine)
    out["steps"] = mine[0]["steps"]
    out["energy_kwh"] = _median_of(mine, "energy_kwh")
    out.update(_hook_summary(mine))
    return out


def _median_of(runs: list[dict], key: str) -> float | None:
    values = [r["measured"][key] for r in runs if r["measured"].get(key) is not None]
    return statistics.median(values) if values else None


def _hook_summary(runs: list[dict]) -> dict[str, Any]:
    """For EnergyTracker: share of wall time inside its hooks, and the costliest hooks (median over runs)."""
    if not runs[0]["measured"].get("hook_s"):
        return {}
    shares = [sum(r["measured"]["hook_s"].values()) / r["wall_s"] for r in runs]
    names = sorted(runs[0]["measured"]["hook_s"])
    per_hook = {
        n: {
            "total_ms": 1000 * statistics.median(r["measured"]["hook_s"].get(n, 0.0) for r in runs),
            "calls": runs[0]["measured"]["hook_calls"].get(n, 0),
        }
        for n in names
    }
    reports = [r["report_s"] for r in runs if r.get("report_s") is not None]
    return {
        "hook_share": _quantiles(shares),
        "hooks": per_hook,
        "report_s": statistics.median(reports) if reports else None,
    }


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    from importlib import metadata

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("torch", "lightning", "codecarbon", "carbontracker", "carbon_callbacks"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "rapl": Path("/sys/class/powercap/intel-rapl:0/energy_uj").exists(),
        "loadavg_1m_start": os.getloadavg()[0],
        "versions": versions,
    }


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.2f}%"


def _ratio_cell(q: dict[str, float]) -> str:
    return f"{_pct(q['median'])} ({_pct(q['min'])} .. {_pct(q['max'])})"


def _num_cell(q: dict[str, float], fmt: str) -> str:
    return f"{q['median']:{fmt}} ({q['min']:{fmt}} .. {q['max']:{fmt}})"


def _header(result: dict[str, Any]) -> str:
    cfg, facts = result["config"], result["machine"]
    return (
        f"Loop: {cfg['epochs']} epochs x {cfg['steps_per_epoch']} steps (+{cfg['val_batches']} val batches per "
        f"epoch and 2 sanity-check batches), MLP {cfg['features']}-{cfg['hidden']}-10, batch {cfg['batch_size']}, "
        f"accelerator={cfg['accelerator']}, torch threads 1; {cfg['rounds']} interleaved rounds, one fresh process "
        f"per run. Machine: {facts['cpus']} x {facts['cpu_model']}, RAPL {'yes' if facts['rapl'] else 'no'}, "
        f"load average (1 min) {facts['loadavg_1m_start']:.1f} at start, {facts['loadavg_1m_end']:.1f} at end."
    )


def _main_table(summary: dict[str, Any]) -> list[str]:
    base = summary.get("none", {})
    lines = [
        "| arm | n | run s (median) | wall vs none: median of rounds (min .. max) | CPU vs none: median of rounds "
        "(min .. max) | fastest run vs fastest none: wall / CPU | tracker start+stop s | peak RSS MiB (vs none) "
        "| import s | energy kWh it measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in summary.items():
        if not s["n"]:
            lines.append(f"| {arm} | 0 | failed: {'; '.join(s['errors'])[:200]} |" + " |" * 7)
            continue
        energy = f"{s['energy_kwh']:.3g}" if s.get("energy_kwh") is not None else "-"
        best = "-"
        if base.get("n"):
            wall, cpu = s["wall_s"]["min"] / base["wall_s"]["min"], s["cpu_s"]["min"] / base["cpu_s"]["min"]
            best = f"{_pct(wall)} / {_pct(cpu)}"
        lines.append(
            f"| {arm} | {s['n']} | {s['wall_s']['median']:.2f} | {_ratio_cell(s['wall_ratio'])} "
            f"| {_ratio_cell(s['cpu_ratio'])} | {best} | {s['fixed_s']['median']:.3f} "
            f"| {s['maxrss_mib']:.0f} ({s['maxrss_delta_mib']:+.1f}) | {s['import_s']:.2f} | {energy} |"
        )
    return lines


def _hook_table(et: dict[str, Any]) -> list[str]:
    share = et["hook_share"]
    report = (
        f"End-of-fit report (report=True), timed separately: {et['report_s']:.2f} s per run."
        if et.get("report_s") is not None
        else "End-of-fit report: not written (report writer unavailable)."
    )
    lines = [
        "",
        f"Time inside EnergyTracker's own hooks (perf_counter around each call): {share['median'] * 100:.3f}% of "
        f"the whole run (min {share['min'] * 100:.3f}%, max {share['max'] * 100:.3f}%). {report}",
        "",
        "| EnergyTracker hook | calls per run | total ms per run (median) | us per call |",
        "|---|---|---|---|",
    ]
    for name, h in sorted(et["hooks"].items(), key=lambda kv: -kv[1]["total_ms"]):
        per_call = 1000 * h["total_ms"] / h["calls"] if h["calls"] else 0.0
        lines.append(f"| {name} | {h['calls']} | {h['total_ms']:.2f} | {per_call:.1f} |")
    return lines


def per_step_us(micro: dict[str, float], heartbeat: bool = True) -> float:
    """EnergyTracker's cost per training step (us): Lightning's dispatch of ``on_train_batch_end`` with its body
    (in epochs where the heartbeat is checked; else it is None too), and of the other per-step hooks, all None."""
    skipped = micro["dispatch of a skipped hook (None) to EnergyTracker"]
    if not heartbeat:
        return HOOKS_PER_STEP * skipped
    return micro["dispatch of on_train_batch_end to EnergyTracker"] + (HOOKS_PER_STEP - 1) * skipped


def _micro_table(micro: dict[str, Any], none: dict[str, Any]) -> list[str]:
    if "error" in micro:
        return ["", f"Per-call costs: failed ({micro['error']})"]
    step_us = 1e6 * none["fit_wall_s"]["median"] / none["steps"] if none.get("n") else None
    lines = [
        "",
        "Per-call costs measured in the middle of a real fit (best of 5 x 20000 calls, microseconds)"
        + (f"; one training step of the `none` arm takes {step_us:.0f} us (median fit time / steps):"
           if step_us else ":"),
        "",
        "| call | us per call |" + (" share of one step |" if step_us else ""),
        "|---|---|" + ("---|" if step_us else ""),
    ]
    for name, us in micro.items():
        lines.append(f"| {name} | {us:.2f} |" + (f" {100 * us / step_us:.2f}% |" if step_us else ""))
    skipped, own, empty = (
        micro["dispatch of a skipped hook (None) to EnergyTracker"],
        micro["dispatch of on_train_batch_end to EnergyTracker"],
        micro["dispatch of a no-op hook to an empty Callback"],
    )
    per_step, quiet, any_cb = per_step_us(micro), per_step_us(micro, heartbeat=False), HOOKS_PER_STEP * empty
    share = (lambda us: f" ({100 * us / step_us:.2f}% of a step)") if step_us else (lambda us: "")
    lines += [
        "",
        f"Lightning dispatches {HOOKS_PER_STEP} hooks per training step to every callback. EnergyTracker sets the "
        f"{HOOKS_PER_STEP - 1} it does not use to None, which Lightning skips, so its cost per step is "
        f"{HOOKS_PER_STEP - 1} x {skipped:.2f} + {own:.2f} = {per_step:.2f} us{share(per_step)} in the epochs that "
        f"check the heartbeat clock (the first of a run, and any after an epoch longer than half of `heartbeat_s`, "
        f"30 s by default), and {HOOKS_PER_STEP} x {skipped:.2f} = {quiet:.2f} us{share(quiet)} in the others, "
        f"where `on_train_batch_end` is None too. An empty Callback costs {HOOKS_PER_STEP} x {empty:.2f} = "
        f"{any_cb:.2f} us{share(any_cb)}.",
    ]
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: the header, the arms table, EnergyTracker's hook table."""
    lines = [_header(result), ""] + _main_table(result["summary"])
    et = result["summary"].get("energytracker", {})
    if et.get("hooks"):
        lines += _hook_table(et)
    if result.get("micro_us"):
        lines += _micro_table(result["micro_us"], result["summary"].get("none", {}))
        if et.get("hooks") and "error" not in result["micro_us"]:
            lines += _attributable(et, result["micro_us"], result["summary"]["none"])
    return "\n".join(lines) + "\n"


def attributable_ms(et: dict[str, Any], micro: dict[str, float]) -> dict[str, float]:
    """What EnergyTracker adds to one run, from timings that load hardly disturbs (ms).

    * ``per_step``: at every training step, Lightning's dispatch of ``on_train_batch_end`` with its body in the
      epochs that check the heartbeat (its calls in the hook table), and of the per-step hooks set to None
      (``micro``: timeit inside a fit; the perf_counter wrapper of the hook table would add its own 0.8 us per
      call);
    * ``other_hooks``: the time inside every other hook (hook table) and their dispatch (an empty hook's each);
    * ``start_stop``: constructing the tracker and the Trainer, beyond the same round's ``none`` arm.
    """
    steps = et["steps"]
    checked = et["hooks"].get("on_train_batch_end", {}).get("calls", 0)  # steps of epochs that check the heartbeat
    others = {name: h for name, h in et["hooks"].items() if name != "on_train_batch_end"}
    dispatch = sum(h["calls"] for h in others.values()) * micro["dispatch of a no-op hook to an empty Callback"]
    return {
        "per_step": (checked * per_step_us(micro) + (steps - checked) * per_step_us(micro, heartbeat=False)) / 1000,
        "other_hooks": sum(h["total_ms"] for h in others.values()) + dispatch / 1000,
        "start_stop": max(0.0, 1000 * et["fixed_extra_s"]["median"]),
    }


def _attributable(et: dict[str, Any], micro: dict[str, float], none: dict[str, Any]) -> list[str]:
    parts = attributable_ms(et, micro)
    total, base = sum(parts.values()), 1000 * none["wall_s"]["median"]
    detail = ", ".join(f"{name} {ms:.1f} ms" for name, ms in parts.items())
    return [
        "",
        f"**Attributable overhead** (the sum of what EnergyTracker adds, from the timings above: {detail}): "
        f"{total:.1f} ms per run, **{100 * total / base:.2f}%** of the `none` arm's median run "
        f"({base / 1000:.2f} s). The end-of-fit report is not included (timed separately above).",
    ]


def _warm_imports(arms: tuple[str, ...]) -> None:
    """Import every arm's libraries once in a throw-away process, so no arm pays for a cold file cache."""
    names = ["torch", "lightning.pytorch"] + [_MODULES[a] for a in arms if a in _MODULES]
    subprocess.run([sys.executable, "-c", "import " + ", ".join(names)], capture_output=True, timeout=CHILD_TIMEOUT_S)


_MODULES = {
    "energytracker": "carbon_callbacks.lightning",
    "codecarbon": "codecarbon",
    "carbontracker": "carbontracker.tracker",
}


def run_parent(cfg: argparse.Namespace) -> dict[str, Any]:
    arms = tuple(cfg.arms.split(","))
    facts = machine_facts()
    _warm_imports(arms)
    runs: list[dict[str, Any]] = []
    for rnd in range(-cfg.warmup, cfg.rounds):
        for arm in arms:
            run = _spawn(arm, cfg)
            run["round"] = rnd
            status = run.get("error") or f"wall {run['wall_s']:.2f} s, cpu {run['cpu_s']:.2f} s"
            print(f"round {rnd:>2} {arm:<14} {status}", flush=True)
            runs.append(run)
    micro = _spawn("micro", cfg) if "energytracker" in arms else {}
    facts["loadavg_1m_end"] = os.getloadavg()[0]
    kept = [r for r in runs if r["round"] >= 0]
    config = {k: getattr(cfg, k) for k in ("epochs", "steps_per_epoch", "val_batches", "batch_size", "features",
                                           "hidden", "accelerator", "rounds", "warmup")}
    summary = summarise(kept, arms)
    return {"config": config, "arms": list(arms), "machine": facts, "summary": summary, "micro_us": micro, "runs": kept}


# ---------------------------------------------------------------------------------------------------------------
# profile


def run_profile(cfg: argparse.Namespace) -> str:
    """cProfile one EnergyTracker run (without the report) in this process: carbon_callbacks' entries."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = run_child("energytracker", cfg, time_report=False)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(r"carbon_callbacks", 30)
    stats.sort_stats("tottime").print_stats(r"carbon_callbacks", 15)
    hooks = result["measured"]["hook_s"]
    lines = [f"{n}: {1000 * t:.2f} ms in {result['measured']['hook_calls'][n]} calls" for n, t in hooks.items()]
    return f"wall {result['wall_s']:.2f} s (profiled)\n" + "\n".join(lines) + "\n" + stream.getvalue()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)} (none is the reference)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each arm once per round)")
    p.add_argument("--warmup", type=int, default=0, help="discarded warm-up rounds (after one import-only warm-up)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=5000)
    p.add_argument("--val-batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--accelerator", default="cpu", help="cpu or gpu")
    p.add_argument("--out", type=Path, default=None, help="output stem (default results/overhead[_gpu])")
    p.add_argument("--child", choices=ARMS + ("micro",), help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help="cProfile one EnergyTracker run instead")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.child:
        print(json.dumps(run_micro(cfg) if cfg.child == "micro" else run_child(cfg.child, cfg)), flush=True)
        return 0
    if cfg.profile:
        print(run_profile(cfg))
        return 0
    if "none" not in cfg.arms.split(","):
        print("--arms must include none (the reference)", file=sys.stderr)
        return 2
    result = run_parent(cfg)
    stem = cfg.out or RESULTS_DIR / ("overhead" if cfg.accelerator == "cpu" else f"overhead_{cfg.accelerator}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(result)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
