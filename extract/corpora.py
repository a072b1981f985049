"""Corpus readers: turn a folder (or a CSV manifest) into one clip table.

Every reader returns a :class:`Corpus` whose ``clips`` table has one row per clip with the
columns of :data:`CLIP_COLUMNS` first, then the corpus's own fields.  A clip has up to three
modalities, audio and video (a path each) and text (its transcript); it may lack any of them
but not all (an empty path or text); file names that don't parse and duplicate clips are listed in
``Corpus.skipped`` with the reason, never silently dropped.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import CorpusError
from .labels import CREMAD_EMOTIONS, RAVDESS_EMOTIONS

CLIP_COLUMNS = ["clip_id", "speaker", "label", "gender", "audio_path", "video_path", "split", "text"]
DATASETS = ("ravdess", "cremad", "manifest", "synthetic")

AUDIO_SUFFIXES = {".wav", ".flac"}
VIDEO_SUFFIXES = {".mp4", ".flv", ".avi", ".mov", ".mkv"}

RAVDESS_HELP = (
    "Download the RAVDESS archives from https://zenodo.org/records/1188976 "
    "(Audio_Speech_Actors_01-24.zip for audio, Video_Speech_Actor_XX.zip for video), "
    "unzip them into one folder so that it holds Actor_01/ ... Actor_24/, and pass it as DATA_DIR."
)
CREMAD_HELP = (
    "Get CREMA-D from https://github.com/CheyneyComputerScience/CREMA-D (git lfs) and pass the "
    "repository folder as DATA_DIR: it must hold AudioWAV/ and VideoFlash/ (or VideoMP4/)."
)
MANIFEST_HELP = (
    "A manifest is a CSV with the columns label, speaker and at least one of audio_path, video_path, "
    "text (optional: clip_id, split); pass the CSV (or a folder holding manifest.csv) as DATA_DIR."
)


@dataclass
class Corpus:
    """A corpus read from disk.

    Attributes
    ----------
    name : str
        Reader name (``ravdess``, ``cremad``, ``manifest``, ``synthetic``).
    root : Path
        Folder or manifest file the clips were read from.
    clips : pandas.DataFrame
        One row per clip, columns :data:`CLIP_COLUMNS` then corpus fields, sorted by clip_id.
    skipped : list of (str, str)
        ``(path, reason)`` for every file that was not turned into a clip.
    manifest_sha256 : str
        SHA-256 of a manifest's bytes ("" for a folder corpus).
    """

    name: str
    root: Path
    clips: pd.DataFrame
    skipped: list = field(default_factory=list)
    manifest_sha256: str = ""

    def identity(self) -> dict:
        """Where this corpus comes from: ``root`` (the folder or manifest, absolute, links
        resolved), which a feature store holds the clips of, and ``manifest_sha256``, the
        manifest's version the store was last brought up to date with (an edited manifest is
        the same corpus: its changed rows are extracted again, see ``sources``)."""
        return {"root": str(self.root.resolve()), "manifest_sha256": self.manifest_sha256}

    def sources(self) -> list:
        """Per clip (row order), what its features are made of, as JSON text:
        ``{"audio": [path, size, mtime_ns], "video": [...]}`` with the path relative to the
        corpus folder (a manifest's folder) and size in bytes (null for a missing file); for a
        manifest also ``"row"``, the row's fields that are not file paths (speaker, label,
        gender, split, text), which a folder corpus reads from its file names.

        A stored clip is reused only while these still match, so an edited, replaced or newly
        added file, and an edited manifest row, are extracted again.
        """
        manifest = self.root.is_file()
        base = self.root.parent if manifest else self.root
        fields = [c for c in CLIP_COLUMNS if c not in ("clip_id", "audio_path", "video_path")]
        records = []
        for _, row in self.clips.iterrows():
            record = {m: _file_record(row[f"{m}_path"], base) for m in ("audio", "video") if row[f"{m}_path"]}
            if manifest:
                record["row"] = {c: str(row[c]) for c in fields}
            records.append(json.dumps(record, sort_keys=True))
        return records

    def summary(self) -> str:
        """One paragraph for the terminal: counts of clips, speakers, labels, modalities, skips."""
        c = self.clips
        lines = [
            f"{self.name}: {len(c)} clips from {c['speaker'].nunique()} speakers in {self.root}",
            f"  audio: {(c['audio_path'] != '').sum()}  video: {(c['video_path'] != '').sum()}"
            f"  both: {((c['audio_path'] != '') & (c['video_path'] != '')).sum()}"
            f"  text: {(c['text'] != '').sum()}",
            "  labels: " + ", ".join(f"{k} {v}" for k, v in c["label"].value_counts().sort_index().items()),
        ]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} files:")
            lines += [f"    {path}: {reason}" for path, reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def _file_record(path: str, base: Path) -> list:
    """``[path relative to base, size in bytes, modification time in ns]``; size and time are
    None when the file cannot be read (its extraction then fails and says why)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    try:
        stat = os.stat(path)
    except OSError:
        return [relative, None, None]
    return [relative, stat.st_size, stat.st_mtime_ns]


def read_corpus(dataset: str, data_dir, *, vocal_channel=None) -> Corpus:
    """Read the corpus ``dataset`` (one of :data:`DATASETS`) from ``data_dir``.

    Parameters
    ----------
    vocal_channel : {"speech", "song", "both"} or None
        RAVDESS-shaped corpora only; None: speech.
    """
    readers = {"ravdess": read_ravdess, "synthetic": read_ravdess, "cremad": read_cremad,
               "manifest": read_manifest}
    if dataset not in readers:
        raise CorpusError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    options = {}
    if vocal_channel is not None:
        if readers[dataset] is not read_ravdess:
            raise CorpusError(f"a vocal channel ({vocal_channel}) can be chosen for RAVDESS-shaped corpora only, "
                              f"not for {dataset}")
        options["vocal_channel"] = vocal_channel
    corpus = readers[dataset](data_dir, **options)
    corpus.name = dataset
    return corpus


def _files_under(root: Path) -> tuple:
    """Every non-hidden file below ``root``, sorted, following symbolic links to folders.

    A folder reached twice (a link loop, or two links to one folder) is read once.

    Returns
    -------
    files : list of Path
    problems : list of (str, str)
        ``(path, reason)`` for links to nothing and folders that cannot be read.
    """
    files, problems, seen = [], [], set()

    def unreadable(err):
        problems.append((err.filename, f"cannot read the folder ({err.strerror})"))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=unreadable):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        for name in (n for n in names if not n.startswith(".")):
            path = Path(folder) / name
            if path.is_symlink() and not path.exists():
                problems.append((str(path), "a link to something that does not exist"))
            else:
                files.append(path)
    return sorted(files), sorted(problems)


def _require_folder(root: Path, what: str, help_text: str) -> None:
    if not root.is_dir():
        raise CorpusError(f"{what} corpus not found: {root} is not a folder. {help_text}")


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV table as strings (missing values as ""), or a CorpusError naming the file."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CorpusError(f"{path}: not a readable CSV table ({err})") from err


def _finish(name: str, root: Path, rows: list, skipped: list, extra_columns: list, help_text: str) -> Corpus:
    """Build the clip table, checking it is not empty."""
    if not rows:
        raise CorpusError(
            f"{name} corpus at {root} holds no usable clips ({len(skipped)} files skipped). {help_text}"
        )
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS + extra_columns)
    clips = clips.sort_values("clip_id", kind="stable").reset_index(drop=True)
    return Corpus(name=name, root=root, clips=clips, skipped=skipped)


# ---------------------------------------------------------------- RAVDESS

RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
RAVDESS_CHANNELS = {"speech": "01", "song": "02"}
# The words of the two statements (Livingstone & Russo 2018), by the file name's statement field.
RAVDESS_STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}


def parse_ravdess_name(stem: str) -> dict:
    """Parse a RAVDESS file stem ``MM-VV-EE-II-SS-RR-AA`` into its fields.

    Raises CorpusError with the reason when a field is out of range.
    """
    match = RAVDESS_NAME.match(stem)
    if not match:
        raise CorpusError("not a RAVDESS name (expected 7 two-digit fields like 03-01-05-01-02-01-12)")
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    checks = [
        (modality in ("01", "02", "03"), f"modality {modality} is not 01, 02 or 03"),
        (channel in ("01", "02"), f"vocal channel {channel} is not 01 (speech) or 02 (song)"),
        (emotion in RAVDESS_EMOTIONS, f"emotion {emotion} is not 01..08"),
        (intensity in ("01", "02"), f"intensity {intensity} is not 01 or 02"),
        (statement in ("01", "02"), f"statement {statement} is not 01 or 02"),
        (repetition in ("01", "02"), f"repetition {repetition} is not 01 or 02"),
        (actor != "00", "actor 00 does not exist"),
    ]
    for ok, reason in checks:
        if not ok:
            raise CorpusError(reason)
    return {
        "modality": modality,
        "vocal_channel": "speech" if channel == "01" else "song",
        "emotion_code": emotion,
        "intensity": "normal" if intensity == "01" else "strong",
        "statement": int(statement),
        "repetition": int(repetition),
        "actor": actor,
        # The clip id drops the modality so that audio and video files of one take pair up.
        "clip_id": "-".join([channel, emotion, intensity, statement, repetition, actor]),
    }


def read_ravdess(data_dir, *, vocal_channel: str = "speech") -> Corpus:
    """Read RAVDESS (or the synthetic corpus, which has the same layout).

    Files may sit in ``Actor_XX/`` folders or flat in ``data_dir``.  The audio of a clip is
    its audio-only file (modality 03, .wav or .flac); failing that, the audio track of the
    full audio-video .mp4 (modality 01).  Its video is the video-only .mp4 (02), failing
    that the audio-video one (01).  Its text is the statement's words
    (:data:`RAVDESS_STATEMENTS`): only two sentences, so text carries no emotion here.

    Parameters
    ----------
    data_dir : str or Path
    vocal_channel : {"speech", "song", "both"}
    """
    root = Path(data_dir)
    _require_folder(root, "RAVDESS", RAVDESS_HELP)
    if vocal_channel not in ("speech", "song", "both"):
        raise CorpusError(f"vocal_channel must be speech, song or both, got {vocal_channel!r}")
    files, skipped = _files_under(root)
    takes = {}
    for path in files:
        suffix = path.suffix.lower()
        if suffix not in AUDIO_SUFFIXES | VIDEO_SUFFIXES:
            continue
        try:
            fields = parse_ravdess_name(path.stem)
            if (suffix in AUDIO_SUFFIXES) != (fields["modality"] == "03"):
                raise CorpusError(f"modality {fields['modality']} does not match a {suffix} file")
        except CorpusError as err:
            skipped.append((str(path), str(err)))
            continue
        if vocal_channel != "both" and fields["vocal_channel"] != vocal_channel:
            continue
        files = takes.setdefault(fields["clip_id"], {"fields": fields})
        if fields["modality"] in files:
            skipped.append((str(path), f"duplicate of {files[fields['modality']]}"))
            continue
        files[fields["modality"]] = path

    rows = []
    for clip_id, files in takes.items():
        f = files["fields"]
        audio = files.get("03") or files.get("01") or ""
        video = files.get("02") or files.get("01") or ""
        actor = int(f["actor"])
        rows.append([
            clip_id, f["actor"], RAVDESS_EMOTIONS[f["emotion_code"]],
            "male" if actor % 2 else "female", str(audio), str(video), "", RAVDESS_STATEMENTS[f["statement"]],
            f["vocal_channel"], f["intensity"], f["statement"], f["repetition"],
        ])
    extra = ["vocal_channel", "intensity", "statement", "repetition"]
    return _finish("ravdess", root, rows, skipped, extra, RAVDESS_HELP)


# ---------------------------------------------------------------- CREMA-D

CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
CREMAD_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}


def parse_cremad_name(stem: str) -> dict:
    """Parse a CREMA-D file stem ``ActorID_Sentence_Emotion_Level`` (e.g. ``1001_DFA_ANG_XX``)."""
    match = CREMAD_NAME.match(stem)
    if not match:
        raise CorpusError("not a CREMA-D name (expected ActorID_Sentence_Emotion_Level like 1001_DFA_ANG_XX)")
    actor, sentence, emotion, level = match.groups()
    if emotion not in CREMAD_EMOTIONS:
        raise CorpusError(f"emotion {emotion} is not one of {', '.join(CREMAD_EMOTIONS)}")
    if level not in CREMAD_LEVELS:
        raise CorpusError(f"level {level} is not one of {', '.join(CREMAD_LEVELS)}")
    return {"actor": actor, "sentence": sentence, "emotion": CREMAD_EMOTIONS[emotion],
            "level": CREMAD_LEVELS[level], "clip_id": stem}


def _cremad_genders(root: Path) -> dict:
    """Actor id -> 'male'/'female' from VideoDemographics.csv when the corpus has it."""
    table = root / "VideoDemographics.csv"
    if not table.is_file():
        return {}
    demo = _read_csv(table)
    if not {"ActorID", "Sex"} <= set(demo.columns):
        raise CorpusError(f"{table}: expected the columns ActorID and Sex, got {', '.join(demo.columns)}")
    return {row["ActorID"]: row["Sex"].strip().lower() for _, row in demo.iterrows()}


def read_cremad(data_dir) -> Corpus:
    """Read CREMA-D: audio from ``AudioWAV/*.wav``, video from ``VideoFlash/*.flv`` or ``VideoMP4/*.mp4``."""
    root = Path(data_dir)
    _require_folder(root, "CREMA-D", CREMAD_HELP)
    folders = {"audio": [root / "AudioWAV"], "video": [root / "VideoFlash", root / "VideoMP4"]}
    if not any(d.is_dir() for ds in folders.values() for d in ds):
        raise CorpusError(f"CREMA-D corpus at {root} has neither AudioWAV/ nor VideoFlash/ nor VideoMP4/. {CREMAD_HELP}")
    takes, skipped = {}, []
    for modality, dirs in folders.items():
        suffixes = AUDIO_SUFFIXES if modality == "audio" else VIDEO_SUFFIXES
        for folder in (d for d in dirs if d.is_dir()):
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes):
                try:
                    fields = parse_cremad_name(path.stem)
                except CorpusError as err:
                    skipped.append((str(path), str(err)))
                    continue
                take = takes.setdefault(fields["clip_id"], {"fields": fields})
                if modality in take:
                    skipped.append((str(path), f"duplicate of {take[modality]}"))
                    continue
                take[modality] = path
    genders = _cremad_genders(root)
    rows = [
        [clip_id, t["fields"]["actor"], t["fields"]["emotion"], genders.get(t["fields"]["actor"], ""),
         str(t.get("audio", "")), str(t.get("video", "")), "", "", t["fields"]["sentence"], t["fields"]["level"]]
        for clip_id, t in takes.items()
    ]
    return _finish("cremad", root, rows, skipped, ["sentence", "level"], CREMAD_HELP)


# ---------------------------------------------------------------- manifest

MANIFEST_REQUIRED = ["label", "speaker"]
MANIFEST_MODALITIES = ["audio_path", "video_path", "text"]


def read_manifest(data_dir) -> Corpus:
    """Read a CSV manifest (MELD, IEMOCAP or any corpus).

    Columns: ``label``, ``speaker``, at least one of ``audio_path``, ``video_path`` and
    ``text`` (the transcript, whitespace runs collapsed; a row needs at least one non-empty), optional ``clip_id``
    (default: the file stem; required for text-only rows) and ``split`` (train/dev/test);
    any other column is kept as a corpus field.  Relative paths are relative to the CSV's folder.
    """
    path = Path(data_dir)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise CorpusError(f"manifest not found: {path}. {MANIFEST_HELP}")
    table = _read_csv(path)
    missing = [c for c in MANIFEST_REQUIRED if c not in table.columns]
    if missing or not set(MANIFEST_MODALITIES) & set(table.columns):
        lacks = [f"the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
        if not set(MANIFEST_MODALITIES) & set(table.columns):
            lacks.append(f"any of {', '.join(MANIFEST_MODALITIES)}")
        raise CorpusError(f"{path}: manifest lacks {' and '.join(lacks)}. {MANIFEST_HELP}")
    extra = [c for c in table.columns if c not in CLIP_COLUMNS]
    rows, skipped, seen = [], [], {}
    for line, record in enumerate(table.to_dict("records"), start=2):
        where = f"{path}:{line}"
        paths = {}
        for column in ("audio_path", "video_path"):
            value = record.get(column, "").strip()
            paths[column] = str((path.parent / value) if value and not Path(value).is_absolute() else value)
        text = " ".join(record.get("text", "").split())
        if not paths["audio_path"] and not paths["video_path"] and not text:
            skipped.append((where, "row has neither audio_path nor video_path nor text"))
            continue
        if not record["label"].strip() or not record["speaker"].strip():
            skipped.append((where, "row has an empty label or speaker"))
            continue
        clip_id = record.get("clip_id", "").strip() or Path(paths["audio_path"] or paths["video_path"]).stem
        if not clip_id:
            skipped.append((where, "text-only row has no clip_id"))
            continue
        if clip_id in seen:
            skipped.append((where, f"duplicate clip id {clip_id} (first on line {seen[clip_id]})"))
            continue
        seen[clip_id] = line
        rows.append([clip_id, record["speaker"].strip(), record["label"].strip(), record.get("gender", ""),
                     paths["audio_path"], paths["video_path"], record.get("split", "").strip(), text]
                    + [record[c] for c in extra])
    corpus = _finish("manifest", path, rows, skipped, extra, MANIFEST_HELP)
    corpus.manifest_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return corpus
