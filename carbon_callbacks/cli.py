"""The ``carbon-callbacks`` command: ``analyze``, ``replay``, ``plot`` and ``report`` for finished runs.

Exit status: 0 on success, 2 on bad input (unreadable file, unknown metric, bad flag), with ONE line on stderr
naming the file and the problem, never a traceback. matplotlib is imported only by ``plot`` and ``report``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence, TextIO

from ._version import __version__
from .errors import CarbonCallbacksError, ConfigError

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
FORMATS = ("png", "svg", "pdf")


class _UsageError(Exception):
    """A bad command line (argparse's message), printed as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and calling ``sys.exit``."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a finite number > 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give an integer >= 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give an integer >= 0")
    return value


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a comma list of {', '.join(FORMATS)}")
    return chosen


def _add_metric_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", help="metric to analyse (default: inferred, e.g. 'valid WER')")
    parser.add_argument(
        "--mode",
        choices=("min", "max"),
        help="min: lower is better (WER, EER, error, loss); max: higher is better (accuracy). Default: inferred",
    )


def _add_energy_args(parser: argparse.ArgumentParser) -> None:
    power = parser.add_mutually_exclusive_group()
    power.add_argument(
        "--power-w", type=_positive_float, metavar="W", help="logs without energy: assume this mean power (W)"
    )
    power.add_argument("--gpu", metavar="MODEL", help="logs without energy: assume this GPU's board power (e.g. A100)")
    parser.add_argument("--n-gpus", type=_positive_int, default=1, metavar="N", help="GPUs of --gpu (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--country", metavar="CODE", help="carbon intensity of a country (ISO code, e.g. FR, DEU)")
    where.add_argument(
        "--intensity", metavar="G_PER_KWH_OR_CSV", help="carbon intensity: a number in g/kWh or an hourly CSV file"
    )
    parser.add_argument(
        "--pue", type=float, default=None, metavar="X", help="facility PUE applied to logs without energy (default 1.0)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``carbon-callbacks`` (its errors raise instead of exiting)."""
    parser = _Parser(
        prog="carbon-callbacks",
        description="Energy and CO2 of speech training runs: how much did the last epochs buy?",
        epilog="Runs: an energy.csv ledger or its directory, a SpeechBrain train_log.txt, a Lightning metrics.csv.",
    )
    parser.add_argument("--version", action="version", version=f"carbon-callbacks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    analyze = sub.add_parser("analyze", help="totals, the 50%% statement, knee and suggested threshold per run")
    analyze.add_argument("paths", nargs="+", metavar="PATH", help="run files or directories")
    _add_metric_args(analyze)
    analyze.add_argument("--json", action="store_true", help="print JSON only")
    _add_energy_args(analyze)

    replay = sub.add_parser("replay", help="replay a stopping rule on a finished run")
    replay.add_argument("path", metavar="PATH", help="run file or directory")
    replay.add_argument("--rule", choices=("energy", "patience"), default="energy", help="stopping rule")
    replay.add_argument(
        "--threshold", type=float, default=None, metavar="X", help="energy rule: metric gain per kWh worth paying for"
    )
    replay.add_argument("--patience", type=_non_negative_int, default=None, metavar="N", help="patience rule: evals")
    _add_metric_args(replay)
    replay.add_argument("--json", action="store_true", help="print JSON only")
    _add_energy_args(replay)

    plot = sub.add_parser("plot", help="figures: metric vs CO2, energy per epoch, cumulative energy, Pareto front")
    plot.add_argument("paths", nargs="+", metavar="PATH", help="run files or directories")
    plot.add_argument("--out", required=True, metavar="DIR", help="directory for the figures")
    plot.add_argument("--format", type=_formats, default=("png",), help="comma list of png,svg,pdf (default png)")
    _add_metric_args(plot)
    _add_energy_args(plot)

    report = sub.add_parser("report", help="a Markdown or HTML report with figures and model-card CO2 fields")
    report.add_argument("paths", nargs="+", metavar="PATH", help="run files or directories")
    report.add_argument("--out", required=True, metavar="FILE", help="FILE.md (PNGs beside it) or FILE.html")
    _add_metric_args(report)
    report.add_argument(
        "--training-type", choices=("pre-training", "fine-tuning"), default=None, help="model-card training_type"
    )
    report.add_argument("--location", default=None, help="model-card geographical_location (default: --country)")
    report.add_argument("--hardware", default=None, help="model-card hardware_used (default: --gpu x --n-gpus)")
    _add_energy_args(report)
    return parser


# ---------------------------------------------------------------------------------------------------------------------
# loading


def _load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``load_run`` from the energy flags."""
    from .carbon import check_pue, resolve_intensity

    kwargs: dict[str, Any] = {"power_w": args.power_w, "gpu": args.gpu, "n_gpus": args.n_gpus}
    if args.n_gpus != 1 and args.gpu is None:
        raise ConfigError(f"--n-gpus {args.n_gpus} needs --gpu MODEL")
    intensity: Any = None
    if args.intensity is not None:
        try:
            intensity = float(args.intensity)
        except ValueError:
            intensity = Path(args.intensity)
            if not intensity.is_file():
                raise ConfigError(
                    f"--intensity {args.intensity!r} is neither a number (g/kWh) nor an existing CSV file"
                ) from None
    if intensity is not None or args.country is not None:
        kwargs["intensity"] = resolve_intensity(intensity=intensity, country=args.country)
    if args.pue is not None:
        kwargs["pue"] = check_pue(args.pue)
    return kwargs


def _load(path: str, kwargs: dict[str, Any]) -> Any:
    from .analysis.readers import load_run

    with _about(path):
        return load_run(path, **kwargs)


class _about:
    """Re-raise a CarbonCallbacksError with the path in front when its message does not name it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> bool:
        from .report import ReportError  # names the output file already

        named = isinstance(error, ReportError) or self.path in str(error)
        if isinstance(error, CarbonCallbacksError) and not named:
            raise type(error)(f"{self.path}: {error}") from error
        return False


def _load_all(paths: Sequence[str], args: argparse.Namespace) -> list[Any]:
    kwargs = _load_kwargs(args)
    return [_load(path, kwargs) for path in paths]


# ---------------------------------------------------------------------------------------------------------------------
# commands


def _cmd_analyze(args: argparse.Namespace, out: TextIO) -> int:
    from .summary import compare

    runs = _load_all(args.paths, args)
    with _about(args.paths[0] if len(args.paths) == 1 else ", ".join(args.paths)):
        comparison = compare(runs, metric=args.metric, mode=args.mode)
    if args.json:
        data = comparison.summaries[0].to_json_dict() if len(runs) == 1 else comparison.to_json_dict()
        out.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    else:
        _print_comparison(comparison, out)
    return EXIT_OK


def _replay(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    from .analysis.replay import replay
    from .analysis.stopping import EnergyAwareRule, PatienceRule
    from .summary import json_clean

    name, mode = run.infer_metric(args.metric, args.mode)
    if args.rule == "energy":
        rule: Any = EnergyAwareRule(args.threshold, unit="kwh", mode=mode)
    else:
        rule = PatienceRule(3 if args.patience is None else args.patience, mode=mode)
    result = replay(run, rule, name, mode)
    data = {"run": run.name, "source": run.source, **result.to_dict()}
    data["energy_is_estimated"] = run.energy_is_estimated
    data["energy_note"] = run.energy_note
    return json_clean(data)


def _cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    if args.rule == "energy" and args.patience is not None:
        raise ConfigError("--patience goes with --rule patience, not --rule energy")
    if args.rule == "patience" and args.threshold is not None:
        raise ConfigError("--threshold goes with --rule energy, not --rule patience")
    run = _load(args.path, _load_kwargs(args))
    with _about(args.path):
        result = _replay(args, run)
    if args.json:
        out.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
    else:
        _print_replay(result, out)
    return EXIT_OK


def _cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
    from .report import write_figures

    runs = _load_all(args.paths, args)
    with _about(args.paths[0] if len(args.paths) == 1 else ", ".join(args.paths)):
        written = write_figures(runs, Path(args.out), metric=args.metric, mode=args.mode, formats=args.format)
    for path in written:
        out.write(f"{path}\n")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from .report import ModelCardInfo, write_report

    target = Path(args.out)
    if target.suffix.lower() not in (".md", ".html", ".htm"):
        raise ConfigError(f"--out {args.out!r}: give a FILE.md or FILE.html")
    runs = _load_all(args.paths, args)
    hardware = args.hardware
    if hardware is None and args.gpu is not None:
        hardware = f"{args.n_gpus} x {args.gpu}"
    card = ModelCardInfo(
        training_type=args.training_type, geographical_location=args.location or args.country, hardware_used=hardware
    )
    with _about(args.paths[0] if len(args.paths) == 1 else ", ".join(args.paths)):
        path = write_report(runs, target, metric=args.metric, mode=args.mode, card=card)
    out.write(f"{path}\n")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# terminal output (rich tables; plain text when not a terminal)


def _console(out: TextIO) -> Any:
    from rich.console import Console

    return Console(file=out, highlight=False, markup=False, emoji=False, width=None if out.isatty() else 100)


def _print_comparison(comparison: Any, out: TextIO) -> None:
    from rich import box
    from rich.table import Table

    from .report import run_facts

    console = _console(out)
    for summary in comparison.summaries:
        table = Table(title=f"{summary.run_name}  ({summary.source})", box=box.SIMPLE_HEAD, show_header=False,
                      title_justify="left", min_width=60)
        table.add_column("quantity", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in run_facts(summary):
            table.add_row(key, value)
        table.add_row("knee", f"epoch {summary.knee_epoch}" if summary.knee_epoch is not None else "none")
        console.print(table)
        console.print(summary.describe_fraction(0.5))
        console.print("Suggested threshold: " + summary.describe_suggestion())
        for note in summary.notes:
            console.print(f"  note: {note}", style="dim")
        console.print()
    if len(comparison.summaries) > 1:
        table = Table(title="All runs", box=box.SIMPLE_HEAD, title_justify="left")
        for column in ("run", "epochs", "energy", "CO2-eq", "best"):
            table.add_column(column)
        for row in comparison.footprint_rows():
            table.add_row(*row)
        console.print(table)
        console.print(comparison.describe_footprint())
        console.print(comparison.describe_pareto())


def _print_replay(result: dict[str, Any], out: TextIO) -> None:
    from .summary import format_energy, format_quantity

    console = _console(out)
    metric = result["metric"]
    if result["stopped"]:
        console.print(f"{result['run']}: the rule stops at epoch {result['stop_epoch']}.")
    else:
        console.print(f"{result['run']}: the rule never stops this run (last epoch {result['stop_epoch']}).")
    console.print(f"rule: {result['rule']}")
    console.print(f"why: {result['reason']}")
    saved = result["energy_saved_fraction"] or 0.0
    console.print(f"energy saved: {format_energy(result['energy_saved_kwh'] or 0.0)} ({100 * saved:.0f}%)"
                  + (" (estimated)" if result["energy_is_estimated"] else ""))
    loss_rel = result["metric_loss_relative"]
    rel = f" ({100 * loss_rel:.1f}% relative)" if loss_rel is not None else ""
    console.print(f"best {metric} kept: {format_quantity(result['metric_at_stop'])} instead of "
                  f"{format_quantity(result['final_best_metric'])}: {format_quantity(result['metric_loss'])} "
                  f"worse{rel}")


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "analyze": _cmd_analyze,
    "replay": _cmd_replay,
    "plot": _cmd_plot,
    "report": _cmd_report,
}


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input) instead of exiting."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        return _COMMANDS[args.command](args, sys.stdout)
    except SystemExit as done:  # --help and --version end argparse here; never leave the interpreter from main()
        return int(done.code or 0) if not isinstance(done.code, str) else EXIT_BAD_INPUT
    except _UsageError as error:
        print(_one_line(str(error)), file=sys.stderr)
    except CarbonCallbacksError as error:
        print(f"carbon-callbacks: error: {_one_line(str(error))}", file=sys.stderr)
    except OSError as error:  # writing figures or reports (read errors arrive as ReadError)
        where = f"{error.filename}: " if error.filename else ""
        print(f"carbon-callbacks: error: {where}{_one_line(error.strerror or str(error))}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
