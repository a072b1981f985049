"""MELD transcripts -> an emofuse manifest (text only).

MELD (Poria et al. 2019, ACL) ships one CSV per split (``train_sent_emo.csv``,
``dev_sent_emo.csv``, ``test_sent_emo.csv``) with the columns ``Sr No., Utterance, Speaker,
Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``.
:func:`meld_manifest` turns them into one manifest (clip id ``<split>_dia<D>_utt<U>``, MELD's
media file stem within its split) with ``text``, ``speaker``, ``label`` (the 7 emotions) and
``split``; MELD's own split name is kept in ``meld_split``.

Protocol: MELD's official split is by dialogue, not by speaker: the six main characters of
*Friends* speak in every split, so a model tested on it has heard most test speakers in
training (a *speaker-overlapping split*).  :func:`speaker_overlap` measures it and the
command line prints it.  When the test CSV is absent, ``dev`` becomes the test split
(``PROTOCOL=manifest`` trains on ``train`` and tests on ``test``).

Encoding quirks of the released CSVs are repaired by :func:`clean_text`: files that are not
UTF-8 are read as Windows-1252; text that went through a UTF-8 -> Latin-1 round trip
("donâ\\x80\\x99t") is decoded back; stray C1 control characters (``"\\x92"``, ``"\\x85"``,
``"\\x97"``: Windows-1252 bytes read as Latin-1) become the characters they stood for; and
typographic quotes, dashes and ellipses become ASCII (the encoder's word pieces were learnt
mostly on ASCII punctuation: "don’t" and "don't" would tokenise differently).

    python -m extract.meld ../shared/data/meld-text data/meld/manifest.csv
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .errors import CorpusError

MELD_COLUMNS = ["Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"]
MELD_EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
MELD_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
MELD_HELP = ("MELD's transcripts are train_sent_emo.csv, dev_sent_emo.csv and test_sent_emo.csv from "
             "https://github.com/declare-lab/MELD (data/MELD/); pass their folder.")

_ASCII = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"',
                        "–": "-", "—": "-", "…": "...", "\u00a0": " "})


def clean_text(text: str) -> str:
    """Repair one MELD utterance's encoding and normalise its punctuation to ASCII.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        The utterance with mojibake undone, C1 controls mapped through Windows-1252,
        typographic punctuation as ASCII and whitespace runs collapsed to one space.
    """
    if any("\u0080" <= c <= "\u00ff" for c in text) and all(ord(c) < 256 for c in text):
        try:
            text = text.encode("latin-1").decode("utf-8")  # UTF-8 bytes once read as Latin-1
        except UnicodeDecodeError:
            pass
    text = "".join(bytes([ord(c)]).decode("cp1252", errors="replace") if "\u0080" <= c <= "\u009f" else c
                   for c in text)
    return " ".join(text.translate(_ASCII).split())


def read_meld_csv(path) -> pd.DataFrame:
    """One MELD CSV as strings, UTF-8 or else Windows-1252, utterances cleaned.

    Raises
    ------
    CorpusError
        The file is missing, not a CSV, or lacks MELD's columns (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"MELD file not found: {path}. {MELD_HELP}")
    raw = path.read_bytes()
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        decoded = raw.decode("cp1252", errors="replace")
    from io import StringIO

    try:
        table = pd.read_csv(StringIO(decoded), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CorpusError(f"{path}: not a readable CSV table ({err})") from err
    missing = [c for c in MELD_COLUMNS if c not in table.columns]
    if missing:
        raise CorpusError(f"{path}: not a MELD table, it lacks {', '.join(missing)}. {MELD_HELP}")
    return table.assign(Utterance=table["Utterance"].map(clean_text),
                        Emotion=table["Emotion"].str.strip().str.lower(),
                        Speaker=table["Speaker"].map(lambda s: " ".join(s.split())))


def meld_manifest(meld_dir) -> pd.DataFrame:
    """The manifest of MELD's transcripts in ``meld_dir``.

    Parameters
    ----------
    meld_dir : str or Path
        Folder holding ``train_sent_emo.csv`` and ``dev_sent_emo.csv`` (and optionally
        ``test_sent_emo.csv``).

    Returns
    -------
    pandas.DataFrame
        Columns ``clip_id, text, speaker, label, split, meld_split, sentiment, dialogue_id,
        utterance_id``; ``split`` is MELD's, except that ``dev`` is ``test`` when the test CSV
        is absent.  Rows with an empty utterance or an emotion outside :data:`MELD_EMOTIONS`
        raise, since MELD has none.
    """
    root = Path(meld_dir)
    present = {split: root / name for split, name in MELD_FILES.items() if (root / name).is_file()}
    if "train" not in present or not {"dev", "test"} & set(present):
        raise CorpusError(f"{root}: MELD needs {MELD_FILES['train']} and {MELD_FILES['dev']} "
                          f"(or {MELD_FILES['test']}). {MELD_HELP}")
    parts = []
    for split, path in present.items():
        table = read_meld_csv(path)
        bad = table[(table["Utterance"] == "") | ~table["Emotion"].isin(MELD_EMOTIONS)]
        if len(bad):
            row = bad.index[0]
            raise CorpusError(f"{path}:{row + 2}: empty utterance or unknown emotion "
                              f"{table['Emotion'][row]!r} ({len(bad)} such rows)")
        parts.append(pd.DataFrame({
            "clip_id": split + "_dia" + table["Dialogue_ID"] + "_utt" + table["Utterance_ID"],
            "text": table["Utterance"], "speaker": table["Speaker"], "label": table["Emotion"],
            "split": "test" if split == "dev" and "test" not in present else split,
            "meld_split": split, "sentiment": table["Sentiment"],
            "dialogue_id": table["Dialogue_ID"], "utterance_id": table["Utterance_ID"],
        }))
    manifest = pd.concat(parts, ignore_index=True)
    duplicated = manifest["clip_id"][manifest["clip_id"].duplicated()]
    if len(duplicated):
        raise CorpusError(f"{root}: duplicate MELD utterance ids, e.g. {duplicated.iloc[0]}")
    return manifest


def speaker_overlap(clips: pd.DataFrame) -> dict:
    """How much a train/test split shares speakers.

    Parameters
    ----------
    clips : pandas.DataFrame
        Columns ``speaker`` and ``split`` (train/dev train, test tests).

    Returns
    -------
    dict
        ``shared_speakers`` (sorted list), ``test_speakers`` (count), ``test_clips_by_shared``
        (fraction of test clips whose speaker also speaks in training) and ``label``
        (``"speaker-overlapping split"`` or ``"speaker-independent split"``).
    """
    split = clips["split"].str.lower()
    train = set(clips["speaker"][split.isin(["train", "dev"])])
    test_speakers = clips["speaker"][split == "test"]
    shared = sorted(train & set(test_speakers))
    return {
        "shared_speakers": shared,
        "test_speakers": int(test_speakers.nunique()),
        "test_clips_by_shared": float(test_speakers.isin(shared).mean()) if len(test_speakers) else 0.0,
        "label": "speaker-overlapping split" if shared else "speaker-independent split",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extract.meld", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("meld_dir", type=Path, help="folder of MELD's *_sent_emo.csv files")
    parser.add_argument("out", type=Path, help="manifest CSV to write")
    args = parser.parse_args(argv)
    try:
        manifest = meld_manifest(args.meld_dir)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        manifest.to_csv(tmp, index=False)
    overlap = speaker_overlap(manifest)
    counts = manifest.groupby("split")["label"].value_counts().unstack(fill_value=0)
    print(f"{args.out}: {len(manifest)} utterances, {manifest['speaker'].nunique()} speakers")
    print(counts.to_string())
    print(f"{overlap['label']}: {len(overlap['shared_speakers'])} of {overlap['test_speakers']} test speakers "
          f"also speak in training ({overlap['test_clips_by_shared']:.1%} of test utterances)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
