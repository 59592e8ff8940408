"""``python -m carbon_callbacks.synth asr|sv --out DIR ...``: generate a synthetic data set and print a summary."""

from __future__ import annotations

import argparse
import sys

from ..errors import CarbonCallbacksError
from .asr import generate_asr
from .dataset import GeneratedData
from .sv import generate_sv


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m carbon_callbacks.synth", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    asr = sub.add_parser("asr", help="spoken digit sequences for CTC ASR")
    asr.add_argument("--out", required=True, help="output folder (manifests + wav/)")
    asr.add_argument("--n-train", type=int, default=2000)
    asr.add_argument("--n-valid", type=int, default=200)
    asr.add_argument("--n-test", type=int, default=200)
    asr.add_argument("--min-digits", type=int, default=2)
    asr.add_argument("--max-digits", type=int, default=5)
    asr.add_argument("--seed", type=int, default=0)
    asr.add_argument("--workers", type=int, default=2, help="rendering processes (output does not depend on it)")
    sv = sub.add_parser("sv", help="synthetic speakers and trial lists for speaker verification")
    sv.add_argument("--out", required=True, help="output folder (manifests, trial lists + wav/)")
    sv.add_argument("--n-train-speakers", type=int, default=200)
    sv.add_argument("--utts-per-speaker", type=int, default=20)
    sv.add_argument("--n-valid-speakers", type=int, default=20)
    sv.add_argument("--n-test-speakers", type=int, default=40)
    sv.add_argument("--eval-utts-per-speaker", type=int, default=6)
    sv.add_argument("--seed", type=int, default=0)
    sv.add_argument("--workers", type=int, default=2, help="rendering processes (output does not depend on it)")
    return parser


def _generate(args: argparse.Namespace) -> GeneratedData:
    if args.kind == "asr":
        return generate_asr(
            args.out, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
            min_digits=args.min_digits, max_digits=args.max_digits, seed=args.seed, workers=args.workers,
        )
    return generate_sv(
        args.out, n_train_speakers=args.n_train_speakers, utts_per_speaker=args.utts_per_speaker,
        n_valid_speakers=args.n_valid_speakers, n_test_speakers=args.n_test_speakers,
        eval_utts_per_speaker=args.eval_utts_per_speaker, seed=args.seed, workers=args.workers,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the generator; returns 0, or 2 with a one-line message for a bad argument."""
    args = _parser().parse_args(argv)
    try:
        data = _generate(args)
    except CarbonCallbacksError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(data.utterances.values())
    print(f"{total} utterances ({sum(data.duration_s.values()) / 60:.1f} min of audio) in {data.elapsed_s:.1f} s")
    for name, path in {**data.manifests, **{f"{k} trials": v for k, v in data.trials.items()}}.items():
        count = f"{data.utterances[name]:>6} utts " if name in data.utterances else " " * 12
        print(f"  {name:<12} {count} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
