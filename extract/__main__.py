"""Command line of the extract stage.

    python -m extract corpus --out data/synthetic --actors 8 --seed 0   # write the synthetic corpus
    python -m extract clips --dataset ravdess --data-dir DIR            # list a corpus -> cache/<dataset>/clips.csv
"""

import argparse
import sys
from pathlib import Path

from .atomic import atomic_path
from .corpora import DATASETS, read_corpus
from .errors import EmofuseError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="write the built-in synthetic RAVDESS-shaped corpus")
    corpus.add_argument("--out", type=Path, default=Path("data/synthetic"))
    corpus.add_argument("--actors", type=int, default=8)
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--video-size", choices=("small", "ravdess"), default="small",
                        help="small (fast demo) or ravdess (1280x720, 30 fps, 48 kHz audio, for benchmarks)")
    corpus.add_argument("--jobs", type=int, default=2)

    clips = commands.add_parser("clips", help="read a corpus and write its clip table")
    clips.add_argument("--dataset", choices=DATASETS, required=True)
    clips.add_argument("--data-dir", type=Path, required=True)
    clips.add_argument("--cache-dir", type=Path, default=Path("cache"))
    clips.add_argument("--vocal-channel", choices=("speech", "song", "both"), default="speech",
                       help="RAVDESS only")

    args = parser.parse_args(argv)
    try:
        if args.command == "corpus":
            from .synthetic import generate_corpus

            out = generate_corpus(args.out, actors=args.actors, seed=args.seed,
                                  video_size=args.video_size, n_jobs=args.jobs)
            print(f"synthetic corpus ready in {out}")
        else:
            options = {"vocal_channel": args.vocal_channel} if args.dataset in ("ravdess", "synthetic") else {}
            found = read_corpus(args.dataset, args.data_dir, **options)
            out = args.cache_dir / args.dataset / "clips.csv"
            with atomic_path(out) as tmp:
                found.clips.to_csv(tmp, index=False)
            print(found.summary())
            print(f"clip table written to {out}")
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
