"""Command line of the classify stage.

    python -m classify evaluate --dataset ravdess --method concat --classifier svm,rf   # -> reports/ravdess/
    python -m classify evaluate --dataset ravdess --method mfa --classifier light --protocol loso
    python -m classify evaluate --dataset ravdess --method concat --speaker-norm enrol:8
    python -m classify predict reports/ravdess/model.joblib clip.wav take.mp4 a.wav+a.mp4  # per-emotion probabilities
    python -m classify predict reports/ravdess/model.joblib clip.wav --enrol speaker_clips/

`evaluate` prints the full table, then the selected (nested) figure: the one to quote.
"""

import argparse
import logging
import sys
from pathlib import Path

from extract.errors import EmofuseError

from fusion.protocol import PROTOCOLS
from fusion.speaker_norm import MODES_HELP

from .classifiers import CLASSIFIERS


def _figure(entry: dict) -> str:
    return (f"UA {100 * entry['ua']:5.1f} ± {100 * entry['ua_std']:4.1f}  accuracy {100 * entry['accuracy']:5.1f}  "
            f"macro-F1 {100 * entry['macro_f1']:5.1f}")


def print_summary(summary: dict) -> None:
    """The evaluation's table, the report and model paths, and the selected figures last."""
    for entry in summary["results"]:
        notes = [n for n in (entry.get("adaptation"), entry.get("warning")) if n]
        print(f"{entry['protocol']:>8} {entry['modality']:>5} {entry['method']:>16} {entry['classifier']:>16}  "
              f"{_figure(entry)}" + "".join(f"  [{n}]" for n in notes))
    print(f"report written to {summary['report']}")
    if summary["model"]:
        chosen = summary["best"]["none"]["chosen"]
        print(f"model (chosen inside all speakers, refit on all clips): {chosen['modality']} / {chosen['method']} / "
              f"{chosen['classifier']}: {summary['model']}")
    for protocol, figure in summary["selected"].items():
        print(f"SELECTED {protocol:>8} (nested: {figure['how']}): {_figure(figure)}")
    for protocol, modes in summary["selected_adaptive"].items():
        for mode, figure in modes.items():
            print(f"SELECTED {protocol:>8} {figure['adaptation']}, {mode}: {_figure(figure)}")


def _positive(text):
    """An integer >= 1, for ``--jobs``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    evaluate = commands.add_parser("evaluate", help="train and test on every fold, write the report and model")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--method", required=True, help="fusion method, as given to `python -m fusion`")
    evaluate.add_argument("--classifier", default="svm",
                          help=f"'all', 'light' or a comma list of: {', '.join(CLASSIFIERS)}")
    evaluate.add_argument("--protocol", choices=PROTOCOLS, default=None,
                          help="evaluate only this protocol (default: every protocol fused)")
    evaluate.add_argument("--speaker-norm", default="none", metavar="MODE",
                          help=f"which speaker adaptation of the method to read: {MODES_HELP}")
    evaluate.add_argument("--jobs", type=_positive, default=1, help="parallel workers of the nested selection")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.add_argument("--cache-dir", type=Path, default=Path("cache"))
    evaluate.add_argument("--reports-dir", type=Path, default=Path("reports"))

    predict = commands.add_parser("predict", help="print per-emotion probabilities of new files")
    predict.add_argument("model", type=Path, help="model.joblib written by `evaluate`")
    predict.add_argument("files", nargs="+", type=Path, help="audio (wav, flac, ...) or video (mp4, ...) files")
    predict.add_argument("--enrol", nargs="+", type=Path, default=None, metavar="DIR_OR_FILE",
                         help="unlabelled clips of the same speaker: the speaker-adaptive model normalises "
                              "with their statistics")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "evaluate":
            from .evaluate import evaluate as run_evaluation

            summary = run_evaluation(args.dataset, args.method, args.classifier, protocol=args.protocol,
                                     speaker_norm=args.speaker_norm, cache_dir=args.cache_dir,
                                     reports_dir=args.reports_dir, n_jobs=args.jobs, progress=not args.no_progress)
            print_summary(summary)
        else:
            from .predict import load_model, predict_files

            table, note = predict_files(load_model(args.model), args.files, enrol=args.enrol)
            if note:
                print(f"note: {note}", file=sys.stderr)
            print(table.to_string(float_format=lambda p: f"{p:.3f}"))
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
