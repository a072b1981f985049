"""Write the synthetic corpus: RAVDESS's layout and names, drawn voices and faces.

Each actor speaks the two statements twice in the eight RAVDESS emotions at two
intensities (neutral at normal intensity only): 60 takes, each written as an audio-only
``03-01-EE-II-SS-RR-AA.wav`` and a video-only ``02-01-EE-II-SS-RR-AA.mp4`` in ``Actor_AA/``.
Odd actors are male, even actors female, as in RAVDESS.

Every take draws its randomness from ``(seed, actor, take fields)`` alone, so a corpus does
not depend on the order or the number of processes that wrote it.  Files are written under
a hidden temporary name and renamed into place; ``.complete`` (JSON) marks a finished corpus
and ``.generating`` an unfinished one, so an interrupted run resumes where it stopped.
"""

import json
import os
import sys
import time
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import cv2
import joblib
import numpy as np
import soundfile as sf

from ..atomic import atomic_path
from ..errors import CorpusError
from ..labels import RAVDESS_EMOTIONS
from .face import RAVDESS_VIDEO, SMALL_VIDEO, render_face_clip, sample_face
from .voice import sample_voice, synthesize_speech

GENERATOR_VERSION = 1
FORMATS = {
    "small": {**SMALL_VIDEO, "sr": 16000},
    "ravdess": {**RAVDESS_VIDEO, "sr": 48000},
}
INTENSITIES = {"01": 1.0, "02": 2.0}  # normal, strong
CLIP_SECONDS = (3.2, 3.8)  # range of take lengths, like RAVDESS speech
COMPLETE, GENERATING = ".complete", ".generating"


@dataclass(frozen=True)
class Take:
    """One take of one actor, by its RAVDESS fields (two-digit codes)."""

    emotion: str
    intensity: str
    statement: str
    repetition: str
    actor: int

    def filename(self, modality: str) -> str:
        """RAVDESS file name, e.g. ``03-01-05-02-01-01-07.wav`` for modality ``"03"``."""
        suffix = ".wav" if modality == "03" else ".mp4"
        fields = [modality, "01", self.emotion, self.intensity, self.statement, self.repetition, f"{self.actor:02d}"]
        return "-".join(fields) + suffix

    @property
    def key(self) -> tuple:
        """The take's fields as integers, for seeding its random generators."""
        return (self.actor, int(self.emotion), int(self.intensity), int(self.statement), int(self.repetition))


def actor_takes(actor: int) -> list:
    """The 60 takes of ``actor``: 8 emotions x 2 intensities (neutral: normal only) x 2 statements x 2 repetitions."""
    return [
        Take(emotion, intensity, statement, repetition, actor)
        for emotion in RAVDESS_EMOTIONS
        for intensity in INTENSITIES
        if not (emotion == "01" and intensity == "02")
        for statement in ("01", "02")
        for repetition in ("01", "02")
    ]


def sample_actor(seed: int, actor: int) -> tuple:
    """Draw the voice and face of ``actor`` (odd: male, even: female) for a corpus ``seed``.

    Returns
    -------
    voice : extract.synthetic.voice.VoiceIdentity
    face : extract.synthetic.face.FaceIdentity
    """
    rng = _generator(seed, 0, actor)
    return sample_voice(rng, "male" if actor % 2 else "female"), sample_face(rng)


def synthesize_take(take: Take, seed: int, video_size: str = "small", *, video: bool = True) -> tuple:
    """Audio and (optionally) video of one take, in memory.

    Parameters
    ----------
    take : Take
    seed : int
        Corpus seed.
    video_size : {"small", "ravdess"}
        Frame size, frame rate and sampling rate (see :data:`FORMATS`).
    video : bool
        Render the frames too (False: ``frames`` is None).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Audio in [-1, 1] at ``FORMATS[video_size]["sr"]`` Hz.
    frames : np.ndarray [shape=(n_frames, height, width, 3), dtype=uint8] or None
        BGR frames at ``FORMATS[video_size]["fps"]``; ``n / sr`` equals ``n_frames / fps``
        to within one audio sample.
    """
    fmt = _format(video_size)
    voice, face = sample_actor(seed, take.actor)
    emotion, intensity = RAVDESS_EMOTIONS[take.emotion], INTENSITIES[take.intensity]
    # 1. Audio: a whole number of video frames long.
    rng = _generator(seed, 1, *take.key)
    n_frames = int(round(rng.uniform(*CLIP_SECONDS) * fmt["fps"]))
    y, envelope = synthesize_speech(
        voice, emotion, intensity, int(take.statement), rng, sr=fmt["sr"], duration=n_frames / fmt["fps"]
    )
    if not video:
        return y, None
    # 2. Video: the mouth follows the syllable envelope.
    frames = render_face_clip(
        face, emotion, intensity, frame_means(envelope, n_frames), _generator(seed, 2, *take.key),
        width=fmt["width"], height=fmt["height"],
    )
    return y, frames


def frame_means(envelope: np.ndarray, n_frames: int) -> np.ndarray:
    """Resample a per-sample envelope to video frames: the mean over each frame's samples.

    Parameters
    ----------
    envelope : np.ndarray [shape=(n,)]
        Per-sample values, ``n >= n_frames``.
    n_frames : int > 0
        Number of video frames spanning the same time as ``envelope``.

    Returns
    -------
    per_frame : np.ndarray [shape=(n_frames,)]
        Frame ``j`` averages samples ``round(j n / n_frames)`` to ``round((j + 1) n / n_frames) - 1``.
    """
    bounds = np.round(np.arange(n_frames + 1) * envelope.size / n_frames).astype(int)
    return np.add.reduceat(envelope, bounds[:-1]) / np.diff(bounds)


def generate_corpus(
    out_dir, *, actors: int = 8, seed: int = 0, video_size: str = "small", n_jobs: int = 2, progress: bool = True
) -> Path:
    """Write (or finish) a synthetic RAVDESS-shaped corpus in ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Corpus folder; created if missing.  It must be empty, an unfinished corpus with the
        same parameters (completed without redoing its files), or a finished one with the same
        parameters (left as it is).
    actors : int in [1, 99]
        Number of actors, 60 takes each.
    seed : int >= 0
        Corpus seed: the same seed writes byte-identical ``.wav`` files.
    video_size : {"small", "ravdess"}
        ``small``: 160x120 at 15 fps with 16 kHz audio (demo, tests);
        ``ravdess``: 1280x720 at 30 fps with 48 kHz audio (benchmarks).
    n_jobs : int
        Parallel worker processes (joblib; -1 = all cores).
    progress : bool
        Print progress to stderr.

    Returns
    -------
    out_dir : Path

    Raises
    ------
    CorpusError
        Bad arguments, a folder that holds something else, or a file that failed to write.
    """
    out = Path(out_dir)
    if not isinstance(actors, Integral) or not 1 <= actors <= 99:
        raise CorpusError(f"actors must be an integer from 1 to 99, got {actors!r}")
    if not isinstance(seed, Integral) or seed < 0:
        raise CorpusError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(n_jobs, Integral) or n_jobs == 0:
        raise CorpusError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    actors, seed, n_jobs = int(actors), int(seed), int(n_jobs)
    params = {"generator_version": GENERATOR_VERSION, "seed": seed, "actors": actors,
              "video_size": video_size, **_format(video_size)}

    # 1. Decide what the folder holds: a finished corpus, an unfinished one, or nothing yet.
    if out.exists() and not out.is_dir():
        raise CorpusError(f"{out} is a file, not a folder")
    if _read_params(out / COMPLETE, params):
        return out
    if out.exists() and any(out.iterdir()) and not _read_params(out / GENERATING, params):
        raise CorpusError(
            f"{out} is not empty and holds no unfinished synthetic corpus with these parameters; "
            "choose an empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / GENERATING).write_text(json.dumps(params, indent=1))

    # 2. Write the takes that lack a file, in parallel; each worker writes whole files.
    takes = [take for actor in range(1, actors + 1) for take in actor_takes(actor)]
    todo = [take for take in takes if not _take_done(out, take)]
    started = time.perf_counter()
    _say(progress, f"synthetic corpus: {len(todo)} of {len(takes)} takes to write in {out} (n_jobs={n_jobs})")
    jobs = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        joblib.delayed(_write_take)(out, take, seed, video_size) for take in todo
    )
    for done, _ in enumerate(jobs, start=1):
        if done % 60 == 0 or done == len(todo):
            _say(progress, f"  {done}/{len(todo)} takes, {time.perf_counter() - started:.0f} s")

    # 3. Mark the corpus finished.
    versions = {"numpy": np.__version__, "opencv": cv2.__version__, "soundfile": sf.__version__,
                "libsndfile": sf.__libsndfile_version__, "python": sys.version.split()[0]}
    (out / GENERATING).write_text(json.dumps({**params, "versions": versions}, indent=1))
    os.replace(out / GENERATING, out / COMPLETE)
    return out


def _format(video_size):
    if video_size not in FORMATS:
        raise CorpusError(f"video_size must be one of {', '.join(FORMATS)}, got {video_size!r}")
    return FORMATS[video_size]


def _generator(seed, *key):
    """Random generator of one stream (0 actor, 1 take audio, 2 take video) of the corpus."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _read_params(marker, params):
    """True when the JSON ``marker`` exists and records exactly ``params`` (besides versions)."""
    if not marker.is_file():
        return False
    recorded = json.loads(marker.read_text())
    recorded.pop("versions", None)
    if recorded != params:
        raise CorpusError(
            f"{marker.parent} holds a synthetic corpus with other parameters ({marker.name}: "
            f"{json.dumps(recorded)}); choose another folder or delete it"
        )
    return True


def _say(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


def _take_done(out, take):
    folder = out / f"Actor_{take.actor:02d}"
    return all((folder / take.filename(m)).is_file() for m in ("03", "02"))


def _write_take(out, take, seed, video_size):
    """Write the take's missing files (the audio is always synthesised: the video needs it)."""
    folder = out / f"Actor_{take.actor:02d}"
    folder.mkdir(exist_ok=True)
    wav, mp4 = folder / take.filename("03"), folder / take.filename("02")
    y, frames = synthesize_take(take, seed, video_size, video=not mp4.is_file())
    if not wav.is_file():
        with atomic_path(wav) as tmp:
            sf.write(tmp, y, FORMATS[video_size]["sr"], subtype="PCM_16", format="WAV")
    if frames is not None:
        with atomic_path(mp4) as tmp:
            _write_mp4(tmp, frames, FORMATS[video_size]["fps"])


def _write_mp4(path, frames, fps):
    """Write BGR ``frames`` (n, h, w, 3) as MPEG-4 Part 2 and check the file reopens with all frames."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise CorpusError(f"OpenCV cannot write {path} (no mp4v encoder?)")
    for frame in frames:
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count != len(frames):
        raise CorpusError(f"{path} reopens with {count} frames instead of {len(frames)}")
