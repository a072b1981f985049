"""Benchmarks of the feature stage, written to ``reports/bench.md`` (``make bench``).

Every figure is a real-time factor: CPU seconds per second of media, on one core (BLAS,
OpenMP and OpenCV limited to one thread), measured in this one run, so ratios between rows
are fair even on a busy machine.  Inputs are RAVDESS-shaped: the real RAVDESS clips in
``../shared/data`` when present, otherwise synthetic clips of the same format (48 kHz audio,
1280x720 30 fps video, about 3.5 s).

    python -m features.bench --out reports/bench.md [--clips 12]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import librosa
import numpy as np
import psutil
from threadpoolctl import threadpool_limits

from extract.decode import iter_grey_frames, load_audio, video_info
from extract.faces import track_faces
from extract.synthetic.corpus import Take, synthesize_take

from .audio import AudioConfig, audio_streams, chroma, egemaps, energy, log_mel, mfcc, pitch, warm_up, zero_crossing_rate
from .functionals import functionals
from .stip import stip_features
from .video import VideoConfig, frame_functionals, hog_stream, summary_hog
from .runner import FACE_DEFAULTS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def cpu_time(function, *args, repeat=1, **kwargs):
    """CPU seconds of one call (best of ``repeat``) and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = function(*args, **kwargs)
        best = min(best, time.process_time() - start)
    return best, result


# ---------------------------------------------------------------- inputs

def audio_inputs(n_clips: int, workdir: Path) -> tuple[list, str]:
    """Paths of RAVDESS-shaped audio clips: real FLACs when present, else synthetic 48 kHz wavs."""
    real = sorted((SHARED / "ravdess-speech").glob("Actor_*/*.flac"))
    if real:
        step = max(1, len(real) // n_clips)
        return real[::step][:n_clips], "real RAVDESS speech (48 kHz FLAC, actors 01-12)"
    import soundfile as sf

    paths = []
    for i, emotion in enumerate(["01", "03", "04", "05", "06", "08"] * n_clips):
        if len(paths) == n_clips:
            break
        take = Take(emotion=emotion, intensity="01", statement="01", repetition="01", actor=f"{1 + i // 6:02d}")
        y, _ = synthesize_take(take, seed=0, video_size="ravdess", video=False)
        paths.append(workdir / f"{take.filename('03')}")
        sf.write(paths[-1], y, 48000)
    return paths, "synthetic RAVDESS-shaped speech (48 kHz wav)"


def video_inputs(workdir: Path) -> tuple[list, str]:
    """Paths of 1280x720 face videos: the real actor-05 clips when present, else synthetic ones."""
    real = sorted((SHARED / "ravdess-video-actor05").glob("*.mp4"))
    if real:
        return real, "real RAVDESS video (1280x720, 29.97 fps, actor 05)"
    paths = []
    for emotion in ("01", "03", "04", "08"):
        take = Take(emotion=emotion, intensity="01", statement="01", repetition="01", actor="05")
        _, frames = synthesize_take(take, seed=0, video_size="ravdess")
        path = workdir / take.filename("02")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, frames.shape[2:0:-1])
        for frame in frames:
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths, "synthetic RAVDESS-shaped video (1280x720, 30 fps)"


# ---------------------------------------------------------------- audio

def naive_script(path, sr=16000):
    """The usual per-feature librosa script on emofuse's clock (25 ms windows, 10 ms hop): load,
    each feature separately, pYIN for pitch, means and standard deviations."""
    y, sr = librosa.load(path, sr=sr)
    clock = {"n_fft": 512, "win_length": 400, "hop_length": 160}
    feats = [
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, n_mels=64, **clock),
        librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160),
        librosa.feature.rms(y=y, frame_length=400, hop_length=160),
        librosa.feature.chroma_stft(y=y, sr=sr, n_fft=1536, hop_length=160),
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=64, **clock)),
    ]
    feats.append(librosa.feature.delta(feats[0]))
    feats.append(librosa.feature.delta(feats[0], order=2))
    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=160)
    return np.concatenate([np.r_[f.mean(axis=1), f.std(axis=1)] for f in feats] + [[np.nanmean(f0)]])


def emofuse_audio(path, config: AudioConfig):
    """emofuse's whole audio set for one file: decode, streams, functionals, eGeMAPS."""
    y = load_audio(path, sr=config.sr)
    values = [functionals(stream)[0] for stream in audio_streams(y, config.sr, config).values()]
    values.append(egemaps(y, config.sr)[0])
    return np.concatenate(values)


def bench_audio(paths) -> list:
    config = AudioConfig()
    warm_up(config)
    naive_script(paths[0])  # compile pYIN's kernels before timing
    signals = [load_audio(p, sr=config.sr) for p in paths]
    streams = [audio_streams(y, config.sr, config) for y in signals]
    seconds = sum(len(y) for y in signals) / config.sr
    kw = {"frame_length": config.frame_length, "hop_length": config.hop_length}
    families = {
        "decode + resample to 16 kHz": lambda i: load_audio(paths[i], sr=config.sr),
        "MFCC + deltas": lambda i: mfcc(signals[i], config.sr, n_mfcc=config.n_mfcc, **kw),
        "zero-crossing rate": lambda i: zero_crossing_rate(signals[i], config.sr, **kw),
        "pitch (YIN + voicing)": lambda i: pitch(signals[i], config.sr, fmin=config.fmin, fmax=config.fmax,
                                                 frame_length=config.pitch_frame_length, hop_length=config.hop_length),
        "energy": lambda i: energy(signals[i], config.sr, **kw),
        "chroma": lambda i: chroma(signals[i], config.sr, frame_length=config.chroma_frame_length,
                                   hop_length=config.hop_length),
        "log-mel": lambda i: log_mel(signals[i], config.sr, n_mels=config.n_mels, **kw),
        "functionals of all streams": lambda i: [functionals(s) for s in streams[i].values()],
        "eGeMAPS (opensmile)": lambda i: egemaps(signals[i], config.sr),
    }
    rows = []
    for name, run in families.items():
        total = sum(cpu_time(run, i, repeat=2)[0] for i in range(len(paths)))
        rows.append((name, total / seconds))
    whole = sum(cpu_time(emofuse_audio, p, config, repeat=2)[0] for p in paths) / seconds
    naive = sum(cpu_time(naive_script, p)[0] for p in paths) / seconds
    smile_alone = sum(cpu_time(egemaps, y, config.sr, repeat=2)[0] for y in signals) / seconds
    rows += [("**emofuse whole audio set (decode, 6 streams, functionals, eGeMAPS)**", whole),
             ("reference: naive librosa script with pYIN", naive),
             ("reference: opensmile eGeMAPS alone", smile_alone)]
    return rows, seconds, naive / whole


# ---------------------------------------------------------------- video

def bench_video(paths) -> list:
    """RTF of each video step on ``paths``, then references: OpenCV's colour decoding and the
    whole-frame face search every ``detect_every`` frames that tracking replaces."""
    config = VideoConfig()
    steps = ["decode to grey (PyAV, luma plane)", "face detection + tracking + crops", "HOG per frame + functionals",
             "summary-image HOG", f"STIP ({len(config.stip_scales)} scales)"]
    references = ["reference: decode to BGR (OpenCV)", "reference: whole-frame face search, no tracking"]
    seconds, timings = 0.0, dict.fromkeys(steps + references, 0.0)
    for path in paths:  # each step: best of 3 runs, which filters out other processes' interference
        fps = video_info(path).fps
        # Decoding streams frames through (as the runner does); the later steps get them kept.
        timings[steps[0]] += cpu_time(lambda: sum(1 for _ in iter_grey_frames(path)), repeat=3)[0]
        frames = list(iter_grey_frames(path))
        seconds += len(frames) / fps
        t, track = cpu_time(lambda: track_faces(iter(frames), fps, **FACE_DEFAULTS), repeat=3)
        timings[steps[1]] += t
        timings[steps[2]] += cpu_time(lambda: frame_functionals(hog_stream(track.crops, track.valid, track.fps)),
                                      repeat=3)[0]
        timings[steps[3]] += cpu_time(summary_hog, track.crops, track.valid, repeat=3)[0]
        timings[steps[4]] += cpu_time(stip_features, track.crops, track.valid, track.fps, scales=config.stip_scales,
                                      repeat=3)[0]
        timings[references[0]] += cpu_time(lambda: sum(1 for _ in opencv_frames(path)), repeat=3)[0]
        whole_frame_search = {**FACE_DEFAULTS, "track_face_px": None}
        timings[references[1]] += cpu_time(lambda: track_faces(iter(frames), fps, **whole_frame_search), repeat=3)[0]
        del frames
    rows = [(name, timings[name] / seconds) for name in steps]
    rows.append(("**whole video set**", sum(timings[name] for name in steps) / seconds))
    rows += [(name, timings[name] / seconds) for name in references]
    return rows, seconds


def opencv_frames(path):
    """BGR frames as OpenCV decodes them (the usual way, and emofuse's before PyAV)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        while (frame := capture.read()[1]) is not None:
            yield frame
    finally:
        capture.release()


# ---------------------------------------------------------------- corpus runs

def tree_peak_rss(command, cwd) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak resident memory of its process tree in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed with {proc.returncode}")
    return time.perf_counter() - start, peak / 2**20


def bench_runs(paths, workdir: Path) -> list:
    """Corpus runs of n and 2n clips with 1 and 2 jobs: (clips, jobs, wall s, peak MiB) each."""
    rows = []
    for jobs in (1, 2):
        for n_clips in (len(paths) // 2, len(paths)):
            data, cache = workdir / f"corpus-{n_clips}-{jobs}", workdir / f"cache-{n_clips}-{jobs}"
            data.mkdir()
            for p in paths[:n_clips]:
                shutil.copy(p, data / p.name)
            wall, peak = tree_peak_rss([sys.executable, "-m", "features", "extract", "--dataset", "ravdess",
                                        "--data-dir", str(data), "--cache-dir", str(cache), "--jobs", str(jobs),
                                        "--no-progress"], REPO)
            rows.append((n_clips, jobs, wall, peak))
    return rows


def steady_throughput(rows, jobs) -> float:
    """Clips per second once workers are up: the extra clips over the extra time, n -> 2n."""
    (n1, _, t1, _), (n2, _, t2, _) = [r for r in rows if r[1] == jobs]
    return (n2 - n1) / (t2 - t1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("reports/bench.md"))
    parser.add_argument("--clips", type=int, default=12, help="audio clips to time")
    parser.add_argument("--run-clips", type=int, default=240,
                        help="clips of the largest corpus run (half as many in the smaller one; the extra time of "
                             "120 clips stands well above the start-up noise of a few seconds)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        workdir = Path(tmp)
        audio_paths, audio_source = audio_inputs(args.clips, workdir)
        audio_rows, audio_seconds, speedup = bench_audio(audio_paths)
        video_paths, video_source = video_inputs(workdir)
        video_rows, video_seconds = bench_video(video_paths)
        run_rows = bench_runs(audio_inputs(args.run_clips, workdir)[0], workdir)
    lines = [
        "# emofuse benchmarks", "",
        f"Machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}. Real-time factor (RTF) = CPU seconds "
        "per second of media on one core; lower is faster.", "",
        f"## Audio features ({len(audio_paths)} clips, {audio_seconds:.1f} s of {audio_source})", "",
        "| step | RTF per core |", "|---|---|",
        *[f"| {name} | {rtf:.4f} |" for name, rtf in audio_rows], "",
        f"emofuse's whole audio set is **{speedup:.1f}x** faster than the naive librosa script (target: 3x or more; "
        "RTF target 0.03).", "",
        f"## Video features ({len(video_paths)} clips, {video_seconds:.1f} s of {video_source})", "",
        "| step | RTF per core |", "|---|---|",
        *[f"| {name} | {rtf:.4f} |" for name, rtf in video_rows], "",
        "Target for the whole video set: 0.15 per core.", "",
        "## Corpus runs (`python -m features extract`, real or synthetic audio clips)", "",
        "| clips | JOBS | wall s (with start-up and warm-up) | peak memory of the process tree, MiB |",
        "|---|---|---|---|",
        *[f"| {n} | {j} | {w:.1f} | {m:.0f} |" for n, j, w, m in run_rows], "",
        f"Steady throughput (extra clips / extra seconds from {run_rows[0][0]} to {run_rows[1][0]} clips): "
        f"{steady_throughput(run_rows, 1):.2f} clips/s with 1 job, {steady_throughput(run_rows, 2):.2f} with 2 "
        f"({steady_throughput(run_rows, 2) / steady_throughput(run_rows, 1):.2f}x). Peak memory with 2 jobs for "
        f"{run_rows[3][0]} / {run_rows[2][0]} clips: {run_rows[3][3] / run_rows[2][3]:.2f}x (flat means close to 1).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
