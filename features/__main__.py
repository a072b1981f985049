"""Command line of the features stage.

    python -m features extract --dataset ravdess --data-dir DIR --jobs 2 [--families mfcc,pitch,egemaps,hog,text]
                               [--vocal-channel speech|song|both] [--scheduler tcp://host:8786]
    python -m features check cache/ravdess/features.h5 [--dataset ravdess --data-dir DIR]
    python -m features prune --dataset ravdess     # remove stored clips that are no longer in the corpus

``extract`` exits with 0 when every clip was stored whole, 3 when some clip or modality
failed (listed in the store's failures table and printed) or some corpus file was not used
(a name that does not parse, a duplicate; printed), 2 on bad arguments or input.  It writes
``<cache-dir>/last-features.mk``, from which the Makefile's later targets take their defaults.
"""

import argparse
import gc
import os
import sys
from pathlib import Path

from extract.atomic import atomic_path
from extract.corpora import DATASETS, read_corpus
from extract.errors import EmofuseError

from .runner import NAN_ALLOWED, default_config, run_features, store_lock
from .store import FeatureStore, check_store, prune_store, store_path

LAST_RUN = "last-features.mk"


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
    run.add_argument("--vocal-channel", choices=("speech", "song", "both"), default=None,
                     help="RAVDESS-shaped corpora: which takes to read (default speech)")
    run.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    run.add_argument("--no-progress", action="store_true")
    check = commands.add_parser("check", help="verify a feature store")
    check.add_argument("store", type=Path)
    check.add_argument("--dataset", choices=DATASETS)
    check.add_argument("--data-dir", type=Path)
    prune = commands.add_parser("prune", help="remove stored clips that are no longer in the corpus")
    prune.add_argument("--dataset", choices=DATASETS, required=True)
    prune.add_argument("--cache-dir", type=Path, default=Path("cache"))
    args = parser.parse_args(argv)
    try:
        if args.command == "extract":
            return _extract(args)
        if args.command == "prune":
            return _prune(args)
        return _check(args)
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _extract(args) -> int:
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    summary = run_features(args.dataset, args.data_dir, jobs=args.jobs, cache_dir=args.cache_dir,
                           config=default_config(families), vocal_channel=args.vocal_channel,
                           scheduler=args.scheduler, progress=not args.no_progress)
    _write_last_run(args)
    print(summary)
    with FeatureStore.open(summary.store, include_stale=True) as store:
        stale = store.stale
        failures = store.failures[~store.failures["clip_id"].isin(stale)]
    for row in failures.itertuples():
        print(f"  failed [{row.stage}] {row.path}: {row.error}")
    for path, reason in summary.unused:
        print(f"  not used {path}: {reason}")
    if stale:
        print(f"  {len(stale)} stored clips are no longer in the corpus ({', '.join(stale[:5])}"
              f"{', ...' if len(stale) > 5 else ''}): fusion and evaluation leave them out; "
              f"`python -m features prune --dataset {args.dataset}` removes them")
    return 3 if len(failures) or summary.unused else 0


def _write_last_run(args) -> None:
    """Write ``<cache-dir>/last-features.mk``: this extraction's dataset, data folder, families and
    vocal channel, as Makefile variables that the Makefile's later targets default to."""
    values = {"LAST_DATASET": args.dataset, "LAST_DATA_DIR": os.path.abspath(args.data_dir),
              "LAST_FAMILIES": args.families or "", "LAST_VOCAL_CHANNEL": args.vocal_channel or ""}
    lines = ["# written by `python -m features extract`; the Makefile's later targets default to it"]
    lines += [f"{name} := {value.replace('$', '$$').replace('#', chr(92) + '#')}" for name, value in values.items()]
    with atomic_path(args.cache_dir / LAST_RUN) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _prune(args) -> int:
    path = store_path(args.dataset, args.cache_dir)
    with store_lock(path, "prune"):
        removed = prune_store(path)
    print(f"{path}: removed {len(removed)} clips that are no longer in the corpus"
          + (f" ({', '.join(removed[:10])}{', ...' if len(removed) > 10 else ''})" if removed else ""))
    return 0


def _check(args) -> int:
    expected = None
    if args.dataset and args.data_dir:
        expected = set(read_corpus(args.dataset, args.data_dir).clips["clip_id"])
    problems = check_store(args.store, expected_ids=expected, nan_allowed=NAN_ALLOWED)
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        with FeatureStore.open(args.store, include_stale=True) as store:
            if store.stale:
                print(f"{len(store.stale)} stored clips are no longer in the corpus (not a problem: left out; "
                      f"`python -m features prune --dataset {store.dataset}` removes them)")
    print(f"{args.store}: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    code = main()
    # The interpreter's last garbage collection walks every object of the libraries loaded
    # (pandas, scipy, opensmile): 0.15-0.2 s of a whole run's wall time, 0.06 s once they are
    # frozen out of it.  Their memory goes back to the system at exit either way.
    gc.freeze()
    sys.exit(code)
