"""Command line of the classify stage.

    python -m classify evaluate --dataset ravdess --method concat --classifier svm,rf   # -> reports/ravdess/
    python -m classify evaluate --dataset ravdess --method mfa --classifier all
    python -m classify predict reports/ravdess/model.joblib clip.wav take.mp4 a.wav+a.mp4  # per-emotion probabilities
    python -m classify recipes                                                  # the published systems
    python -m classify recipe dv-emotionnet --dataset ravdess --data-dir DIR    # one, end to end
    python -m classify recipes --run --dataset synthetic                        # all -> reports/<dataset>/recipes.md
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

    recipe = commands.add_parser("recipe", help="run one published system end to end (see `recipes`)")
    recipe.add_argument("name")
    recipes = commands.add_parser("recipes", help="list the published systems; --run runs all the corpus allows")
    recipes.add_argument("--run", action="store_true")
    for sub in (recipe, recipes):
        sub.add_argument("--dataset", required=sub is recipe)
        sub.add_argument("--data-dir", type=Path, help="the corpus (default data/<dataset> when present)")
        sub.add_argument("--protocols", default="random,segments,speaker,loso",
                         help="comma list of random, segments, speaker, loso")
        sub.add_argument("--jobs", type=int, default=2, help="feature extraction workers")
        sub.add_argument("--cache-dir", type=Path, default=Path("cache"))
        sub.add_argument("--reports-dir", type=Path, default=Path("reports"))

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
        elif args.command in ("recipe", "recipes"):
            return _recipes(args)
        else:
            from .predict import load_model, predict_files

            table = predict_files(load_model(args.model), args.files)
            print(table.to_string(float_format=lambda p: f"{p:.3f}"))
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _recipes(args) -> int:
    """The ``recipe`` and ``recipes`` commands."""
    from . import recipes

    if args.command == "recipes" and not args.run:
        print("\n\n".join(recipes.describe(r) for r in recipes.RECIPES.values()))
        return 0
    if not args.dataset:
        raise EmofuseError("recipes --run needs --dataset")
    options = dict(data_dir=args.data_dir, cache_dir=args.cache_dir, reports_dir=args.reports_dir, jobs=args.jobs,
                   protocols=[p.strip() for p in args.protocols.split(",") if p.strip()])
    if args.command == "recipe":
        summary = recipes.run_recipe(args.name, args.dataset, **options)
    else:
        summary = recipes.run_all(args.dataset, **options)
        for name, reason in summary["skipped"].items():
            print(f"recipe {name} skipped: {reason}")
    for e in summary["results"]:
        print(f"{e['recipe']:>16} {e['classifier']:>18} {e['protocol']:>8} {e['branch']:>5}  accuracy "
              f"{100 * e['accuracy']:5.1f}  UA {100 * e['ua']:5.1f} ± {100 * e['ua_std']:4.1f}  {e['wall_s']:7.1f} s")
    print(f"report written to {summary['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
