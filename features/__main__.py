"""Command line of the features stage.

    python -m features extract --dataset ravdess --data-dir DIR --jobs 2 [--families mfcc,pitch,egemaps,hog,text]
                               [--scheduler tcp://host:8786]
    python -m features check cache/ravdess/features.h5 [--dataset ravdess --data-dir DIR]

``extract`` exits with 0 when every clip was stored whole, 3 when some clip or modality
failed (listed in the store's failures table and printed) or some corpus file was not used
(a name that does not parse, a duplicate; printed), 2 on bad arguments or input.
"""

import argparse
import sys
from pathlib import Path

from extract.corpora import DATASETS, read_corpus
from extract.errors import EmofuseError

from .runner import NAN_ALLOWED, default_config, run_features
from .store import FeatureStore, check_store, store_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("extract", help="extract features of a corpus into its store")
    run.add_argument("--dataset", choices=DATASETS, required=True)
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("--jobs", type=int, default=2)
    run.add_argument("--cache-dir", type=Path, default=Path("cache"))
    run.add_argument("--families", default=None, metavar="NAME,NAME",
                     help="feature families to compute, audio, video and text mixed "
                          "(default: each modality's defaults; text only when named)")
    run.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    run.add_argument("--no-progress", action="store_true")
    check = commands.add_parser("check", help="verify a feature store")
    check.add_argument("store", type=Path)
    check.add_argument("--dataset", choices=DATASETS)
    check.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "extract":
            return _extract(args)
        return _check(args)
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _extract(args) -> int:
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    summary = run_features(args.dataset, args.data_dir, jobs=args.jobs, cache_dir=args.cache_dir,
                           config=default_config(families),
                           scheduler=args.scheduler, progress=not args.no_progress)
    print(summary)
    with FeatureStore.open(summary.store) as store:
        failures = store.failures
    for row in failures.itertuples():
        print(f"  failed [{row.stage}] {row.path}: {row.error}")
    for path, reason in summary.unused:
        print(f"  not used {path}: {reason}")
    return 3 if len(failures) or summary.unused else 0


def _check(args) -> int:
    expected = None
    if args.dataset and args.data_dir:
        expected = set(read_corpus(args.dataset, args.data_dir).clips["clip_id"])
    problems = check_store(args.store, expected_ids=expected, nan_allowed=NAN_ALLOWED)
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{args.store}: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
