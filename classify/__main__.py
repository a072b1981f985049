"""Command line of the classify stage.

    python -m classify evaluate --dataset ravdess --method concat --classifier svm,rf   # -> reports/ravdess/
    python -m classify evaluate --dataset ravdess --method mfa --classifier all
    python -m classify predict reports/ravdess/model.joblib clip.wav take.mp4 a.wav+a.mp4  # per-emotion probabilities
"""

import argparse
import logging
import sys
from pathlib import Path

from extract.errors import EmofuseError

from .classifiers import CLASSIFIERS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    evaluate = commands.add_parser("evaluate", help="train and test on every fold, write the report and model")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--method", required=True, help="fusion method, as given to `python -m fusion`")
    evaluate.add_argument("--classifier", default="svm",
                          help=f"'all', 'light' or a comma list of: {', '.join(CLASSIFIERS)}")
    evaluate.add_argument("--cache-dir", type=Path, default=Path("cache"))
    evaluate.add_argument("--reports-dir", type=Path, default=Path("reports"))

    predict = commands.add_parser("predict", help="print per-emotion probabilities of new files")
    predict.add_argument("model", type=Path, help="model.joblib written by `evaluate`")
    predict.add_argument("files", nargs="+", type=Path, help="audio (wav, flac, ...) or video (mp4, ...) files")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "evaluate":
            from .evaluate import evaluate as run_evaluation

            summary = run_evaluation(args.dataset, args.method, args.classifier,
                                     cache_dir=args.cache_dir, reports_dir=args.reports_dir)
            for entry in summary["results"]:
                print(f"{entry['protocol']:>8} {entry['modality']:>5} {entry['method']:>16} {entry['classifier']:>16}"
                      f"  UA {100 * entry['ua']:5.1f} ± {100 * entry['ua_std']:4.1f}  "
                      f"accuracy {100 * entry['accuracy']:5.1f}  macro-F1 {100 * entry['macro_f1']:5.1f}")
            print(f"report written to {summary['report']}")
            if summary["model"]:
                best = summary["best"]
                print(f"best pipeline {best['modality']} / {best['method']} / {best['classifier']} "
                      f"refit on all clips: {summary['model']}")
        else:
            from .predict import load_model, predict_files

            table = predict_files(load_model(args.model), args.files)
            print(table.to_string(float_format=lambda p: f"{p:.3f}"))
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
