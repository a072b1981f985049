"""Command line of the fusion stage.

    python -m fusion --dataset ravdess --method concat|mfa|zebra|zebra+mfa --protocol speaker|loso|random|manifest
                     [--speaker-norm [all|enrol:K|none]] [--stip-bow 64] [--param mfa__k1=7 ...]
                     [--cache-dir cache] [--seed 0] [--no-progress]

Reads cache/<dataset>/features.h5 and writes cache/<dataset>/fused/<method>[-snorm|-enrol<K>]/<protocol>/.
Speaker normalisation is speaker adaptation (it uses unlabelled clips of the test speaker):
bare --speaker-norm or `all` uses all of them, `enrol:K` K enrolment clips that are not scored.
Exits with 2 and a message on a bad request (unknown method, missing store, ...).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from extract.errors import EmofuseError
from features.store import FeatureStore, store_path

from .protocol import PROTOCOLS
from .run import fuse
from .speaker_norm import MODES_HELP, parse_speaker_norm


def _param(text):
    """``key=value`` with a JSON value (numbers, null, lists) or else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", default="concat", help="concat, mfa, zebra or a chain such as zebra+mfa")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="speaker")
    parser.add_argument("--speaker-norm", nargs="?", const="all", default="none", metavar="MODE",
                        help=f"speaker adaptation: {MODES_HELP} (bare flag: all)")
    parser.add_argument("--stip-bow", type=int, default=None, metavar="N_WORDS",
                        help="per-fold STIP bag of words instead of the fixed stip encoding")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                        help="method parameter, e.g. mfa__k1=7 or n_components=4 (repeatable)")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes fitting folds side by side (not for plain concat, whose folds run "
                             "faster in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = dict(args.param) | ({"stip_bow": args.stip_bow} if args.stip_bow else {})
    try:
        speaker_norm = parse_speaker_norm(args.speaker_norm)
        path = store_path(args.dataset, args.cache_dir)
        if not path.is_file():
            raise EmofuseError(f"no feature store at {path}; run `make features DATASET={args.dataset}` first")
        with FeatureStore.open(path) as store:
            out = fuse(store, args.method, protocol=args.protocol, speaker_norm=speaker_norm,
                       out_root=args.cache_dir, seed=args.seed, jobs=args.jobs, progress=not args.no_progress,
                       **params)
        print(f"fused features in {out}")
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
