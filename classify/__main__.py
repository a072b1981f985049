"""Command line of the classify stage.

    python -m classify evaluate --dataset ravdess --method concat --classifier svm,rf   # -> reports/ravdess/
    python -m classify evaluate --dataset ravdess --method mfa --classifier light --protocol loso
    python -m classify evaluate --dataset ravdess --method concat --speaker-norm enrol:8
    python -m classify predict reports/ravdess/model.joblib clip.wav take.mp4 a.wav+a.mp4  # per-emotion probabilities
    python -m classify predict reports/ravdess/model.joblib clip.wav --enrol speaker_clips/
    python -m classify recipes                                                  # the published systems
    python -m classify recipe dv-emotionnet --dataset ravdess --data-dir DIR    # one, end to end
    python -m classify recipe omsn-er --dataset ravdess --max-epochs 20        # networks' epochs capped
    python -m classify recipes --run --dataset synthetic                        # all -> reports/<dataset>/recipes.md

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
        sub.add_argument("--max-epochs", type=int, default=None,
                         help="cap every network's epochs (a shorter run; recorded in the report)")
        sub.add_argument("--cache-dir", type=Path, default=Path("cache"))
        sub.add_argument("--reports-dir", type=Path, default=Path("reports"))

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "evaluate":
            from .evaluate import evaluate as run_evaluation

            summary = run_evaluation(args.dataset, args.method, args.classifier, protocol=args.protocol,
                                     speaker_norm=args.speaker_norm, cache_dir=args.cache_dir,
                                     reports_dir=args.reports_dir, n_jobs=args.jobs, progress=not args.no_progress)
            print_summary(summary)
        elif args.command in ("recipe", "recipes"):
            return _recipes(args)
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


def _recipes(args) -> int:
    """The ``recipe`` and ``recipes`` commands."""
    from . import recipes

    if args.command == "recipes" and not args.run:
        print("\n\n".join(recipes.describe(r) for r in recipes.RECIPES.values()))
        return 0
    if not args.dataset:
        raise EmofuseError("recipes --run needs --dataset")
    options = dict(data_dir=args.data_dir, cache_dir=args.cache_dir, reports_dir=args.reports_dir, jobs=args.jobs,
                   protocols=[p.strip() for p in args.protocols.split(",") if p.strip()], max_epochs=args.max_epochs)
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
