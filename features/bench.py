"""Benchmarks of the feature stage and of whole runs, written to ``reports/bench.md`` (``make bench``).

Step figures are real-time factors: CPU seconds per second of media, on one core (BLAS,
OpenMP and OpenCV limited to one thread).  Whole runs time ``python -m features extract``
as a user waits for it: wall seconds x cores / seconds of media, beside the sum of the step
figures from the same benchmark run and their ratio; then clips/s and the peak memory of all
processes as the corpus grows (real clips replicated under new actor numbers), a Dask run
through a local scheduler and two worker processes, and the time of fusion + evaluation.
All rows come from one run, so ratios between them are fair even on a busy machine.  Inputs
are RAVDESS-shaped: the real RAVDESS clips in ``../shared/data`` when present, otherwise
synthetic clips of the same format (48 kHz audio, 1280x720 30 fps video, about 3.5 s).

    python -m features.bench --out reports/bench.md [--clips 12] [--corpus-sizes 240 720 2400]
"""

import argparse
import os
import re
import resource
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

from extract.corpora import RAVDESS_STATEMENTS
from extract.decode import iter_grey_frames, load_audio, video_info
from extract.errors import DecodeError
from extract.meld import read_meld_csv
from extract.faces import track_faces
from extract.synthetic.corpus import Take, synthesize_take

from .audio import (AudioConfig, audio_streams, chroma, compare, egemaps, energy, log_mel, mfcc, pitch, warm_up,
                    zero_crossing_rate)
from .functionals import functionals
from .parallel import cpu_seconds, keep_freed_memory, local_cluster
from .stip import stip_features
from .text import TextConfig, embed_texts, load_encoder
from .video import VideoConfig, frame_functionals, hog_stream, summary_hog
from .runner import FACE_DEFAULTS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def cpu_time(function, *args, repeat=1, **kwargs):
    """CPU seconds of one call, its subprocesses included (best of ``repeat``), and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = cpu_seconds()
        result = function(*args, **kwargs)
        best = min(best, cpu_seconds() - start)
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
        take = Take(emotion=emotion, intensity="01", statement="01", repetition="01", actor=1 + i // 6)
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
        take = Take(emotion=emotion, intensity="01", statement="01", repetition="01", actor=5)
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


# ---------------------------------------------------------------- opt-in families

def bench_opt_in(paths, n_texts: int = 200) -> list:
    """Costs of the opt-in families: ComParE's and the eGeMAPS descriptors' (with their
    functionals) RTF per core on ``paths``; the text family's
    encoder load and its ms per utterance, embedded one at a time as the feature runner does,
    on MELD dev transcripts when ``../shared`` has them (else RAVDESS's two statements)."""
    config = AudioConfig()
    signals = [load_audio(p, sr=config.sr) for p in paths]
    seconds = sum(len(y) for y in signals) / config.sr
    compare(signals[0], config.sr)  # build the extractor before timing
    rows = [("ComParE 2016 functionals, 6,373 (opensmile; `compare`), RTF per core",
             sum(cpu_time(compare, y, config.sr, repeat=2)[0] for y in signals) / seconds)]
    only_descriptors = AudioConfig(families=("egemaps_lld",))

    def descriptors(y):
        return [functionals(s) for s in audio_streams(y, config.sr, only_descriptors).values()]
    descriptors(signals[0])  # build the extractor before timing
    rows.append(("eGeMAPS low-level descriptors and their functionals, 275 (opensmile; `egemaps_lld`), RTF per core",
                 sum(cpu_time(descriptors, y, repeat=2)[0] for y in signals) / seconds))
    meld = SHARED / "meld-text" / "dev_sent_emo.csv"
    if meld.is_file():
        texts = read_meld_csv(meld)["Utterance"].head(n_texts).tolist()
        source = f"{len(texts)} MELD dev utterances"
    else:
        texts = (list(RAVDESS_STATEMENTS.values()) * n_texts)[:n_texts]
        source = f"{len(texts)} RAVDESS statements"
    load, _ = cpu_time(load_encoder, TextConfig().encoder)
    embed, _ = cpu_time(lambda: [embed_texts([t]) for t in texts])
    rows += [("MiniLM sentence encoder (`text`): loading, CPU s once per worker", load),
             (f"MiniLM sentence embedding, ms of CPU per utterance ({source}, one at a time)",
              1000 * embed / len(texts))]
    return rows


# ---------------------------------------------------------------- video

AV_AUDIO = "audio set of the same clips (audio track decoded by PyAV, all audio features)"


def bench_video(paths) -> list:
    """RTF of each video step on ``paths``, then references: OpenCV's colour decoding and the
    whole-frame face search every ``detect_every`` frames that tracking replaces."""
    config = VideoConfig()
    steps = ["decode to grey (PyAV, luma plane)", "face detection + tracking + crops", "HOG per frame + functionals",
             "summary-image HOG", f"STIP ({len(config.stip_scales)} scales)"]
    references = ["reference: decode to BGR (OpenCV)", "reference: whole-frame face search, no tracking"]
    seconds, timings = 0.0, dict.fromkeys(steps + [AV_AUDIO] + references, 0.0)
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
        try:  # the whole audio set from the clip's own audio track (absent from synthetic clips)
            timings[AV_AUDIO] += cpu_time(emofuse_audio, path, AudioConfig(), repeat=3)[0]
        except DecodeError:
            pass
        timings[references[0]] += cpu_time(lambda: sum(1 for _ in opencv_frames(path)), repeat=3)[0]
        whole_frame_search = {**FACE_DEFAULTS, "track_face_px": None}
        timings[references[1]] += cpu_time(lambda: track_faces(iter(frames), fps, **whole_frame_search), repeat=3)[0]
        frames = None  # free this clip's frames before the next is decoded
    rows = [(name, timings[name] / seconds) for name in steps]
    rows.append(("**whole video set**", sum(timings[name] for name in steps) / seconds))
    rows += [(name, timings[name] / seconds) for name in [AV_AUDIO] + references]
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

SPEECH_TAKES = [(emotion, intensity, statement, repetition)
                for emotion in ("01", "02", "03", "04", "05", "06", "07", "08")
                for intensity in (("01",) if emotion == "01" else ("01", "02"))
                for statement in ("01", "02") for repetition in ("01", "02")]
"""The 60 (emotion, intensity, statement, repetition) takes of one RAVDESS speech actor."""


def replicate(paths, n_clips: int, modality: str, folder: Path) -> Path:
    """``folder`` filled with ``n_clips`` RAVDESS-named symbolic links to ``paths`` (cycled), 60
    takes per actor under actors 01, 02, ... (``modality`` "03" audio, "01" audio-video)."""
    folder.mkdir(parents=True)
    suffix = paths[0].suffix
    for k in range(n_clips):
        emotion, intensity, statement, repetition = SPEECH_TAKES[k % len(SPEECH_TAKES)]
        name = f"{modality}-01-{emotion}-{intensity}-{statement}-{repetition}-{1 + k // len(SPEECH_TAKES):02d}{suffix}"
        (folder / name).symlink_to(Path(paths[k % len(paths)]).resolve())
    return folder


RSS_SECONDS, TREE_SECONDS = 0.05, 1.0
"""How often ``extract_run`` reads the resident memory of the run's processes, and how often it
lists them.  Listing reads all of /proc (1 ms of CPU); done every 50 ms, it took 1.6 % of this
2-core machine from the run it measures.  Reading a listed process's memory costs 0.04 ms."""


def extract_run(data: Path, cache: Path, *, jobs=2, scheduler=None, watch=()) -> dict:
    """Time ``python -m features extract`` on ``data`` as a user waits for it.

    Returns wall seconds; CPU seconds and peak resident memory (MiB) of its processes and of
    ``watch`` (more processes, e.g. Dask workers, with their children); and the clips, cores and
    seconds of media from the run's summary line.  CPU seconds, unlike wall seconds, do not
    grow when other work shares the machine.
    """
    command = [sys.executable, "-m", "features", "extract", "--dataset", "ravdess", "--data-dir", str(data),
               "--cache-dir", str(cache), "--jobs", str(jobs), "--no-progress",
               *(["--scheduler", scheduler] if scheduler else [])]
    watched = [p for w in watch for p in (psutil.Process(w.pid), *psutil.Process(w.pid).children(recursive=True))]
    cpu_before = sum(_cpu(p) for p in watched) + _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    roots, procs, listed, peak = [psutil.Process(proc.pid), *watched], [], -TREE_SECONDS, 0
    while proc.poll() is None:
        if time.perf_counter() - listed >= TREE_SECONDS:
            procs, listed = _process_tree(roots), time.perf_counter()
        peak = max(peak, sum(_rss(p) for p in procs))
        time.sleep(RSS_SECONDS)
    wall = time.perf_counter() - start
    cpu = sum(_cpu(p) for p in watched) + _children_cpu() - cpu_before  # the run's processes are reaped now
    output = proc.stdout.read()
    summary = re.search(r": (\d+) clips; .* x (\d+) cores / ([\d.]+) s of media\), ([\d.]+) in the clips", output)
    if proc.returncode not in (0, 3) or not summary:  # 3: some clip or modality failed (listed)
        raise RuntimeError(f"{' '.join(command)} failed with {proc.returncode}:\n{output[-2000:]}")
    clips, cores, media = int(summary[1]), int(summary[2]), float(summary[3])
    return {"clips": clips, "wall": wall, "cpu": cpu, "peak": peak / 2**20, "media": media, "cores": cores,
            "rtf": wall * cores / media, "cpu_rtf": cpu / media, "clips_rtf": float(summary[4])}


def _process_tree(roots) -> list:
    """``roots`` and their living descendants (psutil processes)."""
    found = []
    for root in roots:
        try:
            found += [root, *root.children(recursive=True)]
        except psutil.Error:
            pass
    return list(dict.fromkeys(found))


def _rss(process) -> int:
    """Resident bytes of ``process``; 0 once it has ended."""
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _cpu(process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_av_run(video: list, workdir: Path, av_clips: int = 192) -> dict:
    """The whole run of the video clips (with their audio tracks) replicated to ``av_clips``
    audio-visual clips."""
    return extract_run(replicate(video, av_clips, "01", workdir / "av"), workdir / "cache-av")


def bench_speech_runs(speech: list, sizes, workdir: Path, n_speech: int) -> dict:
    """Whole runs of the speech set (JOBS=2, and through a local Dask scheduler with two
    single-threaded workers) and of the speech set replicated to each of ``sizes``."""
    speech_dir = replicate(speech, n_speech, "03", workdir / "speech")
    runs = {"speech": extract_run(speech_dir, workdir / "cache-speech")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with local_cluster(workdir / "nodes", 2, env=env) as (address, processes):
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        runs["dask"] = extract_run(speech_dir, workdir / "cache-dask", scheduler=address, watch=processes)
    for n in sizes:
        runs[n] = runs["speech"] if n == n_speech else \
            extract_run(replicate(speech, n, "03", workdir / f"speech-{n}"), workdir / f"cache-{n}")
    return runs


def bench_stages(cache: Path, methods, workdir: Path) -> list:
    """Wall and CPU seconds of ``python -m fusion`` (LOSO) and of ``python -m classify evaluate``
    (LOSO, the light classifiers and their nested selection), each with 2 workers as ``make
    fuse`` and ``make evaluate`` run them, per fusion method, on the store in ``cache``."""
    rows = []
    for method in methods:
        row = [method]
        for command in (["fusion", "--dataset", "ravdess", "--method", method, "--protocol", "loso", "--jobs", "2",
                         "--cache-dir", str(cache)],
                        ["classify", "evaluate", "--dataset", "ravdess", "--method", method, "--classifier", "light",
                         "--protocol", "loso", "--jobs", "2", "--cache-dir", str(cache),
                         "--reports-dir", str(workdir / "reports")]):
            start, cpu = time.perf_counter(), _children_cpu()
            done = subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True)
            row.append((time.perf_counter() - start, _children_cpu() - cpu) if done.returncode == 0 else
                       f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        rows.append(tuple(row))
    return rows


def _seconds(value) -> str:
    return f"{value[0]:.1f} ({value[1]:.1f} CPU)" if isinstance(value, tuple) else str(value)


def corpus_lines(runs, sizes, steps_audio, steps_av, stage_rows, speech_source) -> list:
    speech, av, dask = runs["speech"], runs["av"], runs["dask"]
    load = os.getloadavg()
    return [
        "## Whole runs (`python -m features extract`, as a user waits for it)", "",
        "RTF per core of a whole run = wall seconds (start-up included) x cores / seconds of media, what a user "
        "waits for; CPU RTF = CPU seconds of all its processes / seconds of media, which other work on the machine "
        "inflates much less; the clips' own CPU RTF leaves out start-up, scheduling and writing.  The steps are the step figures above, summed; the ratios compare each RTF with them.  "
        f"Load average at the end of the benchmark: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores.", "",
        "| run | clips | media s | wall s | RTF per core | CPU RTF | clips' own CPU RTF | sum of the steps | ratios |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {r['clips']} | {r['media']:.0f} | {r['wall']:.1f} | {r['rtf']:.4f} | {r['cpu_rtf']:.4f} | "
          f"{r['clips_rtf']:.4f} | {steps:.4f} | {r['rtf'] / steps:.2f}x, {r['cpu_rtf'] / steps:.2f}x |"
          for name, r, steps in [(f"{speech_source}, JOBS=2", speech, steps_audio),
                                 ("the same through a local Dask scheduler + 2 workers (`--nthreads 1`)", dask,
                                  steps_audio),
                                 ("1280x720 audio-visual mp4 (the video clips above, replicated), JOBS=2", av,
                                  steps_av)]], "",
        "Targets: ratio within 1.15x; 720 real speech clips at RTF <= 0.03 per core; 60 or more audio-visual "
        "clips at <= 0.15.", "",
        "| clips (speech, replicated) | wall s | clips/s | CPU RTF | peak memory of all processes, MiB |",
        "|---|---|---|---|---|",
        *[f"| {n} | {runs[n]['wall']:.1f} | {n / runs[n]['wall']:.1f} | {runs[n]['cpu_rtf']:.4f} | "
          f"{runs[n]['peak']:.0f} |" for n in sizes],
        f"| {dask['clips']} through Dask (client, scheduler, workers) | {dask['wall']:.1f} | "
        f"{dask['clips'] / dask['wall']:.1f} | {dask['cpu_rtf']:.4f} | {dask['peak']:.0f} |", "",
        f"Peak memory from {sizes[0]} to {sizes[-1]} clips: {runs[sizes[-1]]['peak'] / runs[sizes[0]]['peak']:.2f}x "
        "(target: within 10 %).", "",
        f"## Fusion and evaluation ({speech['clips']} clips of the JOBS=2 run, LOSO, light classifiers)", "",
        "| method | `python -m fusion` wall s (CPU s) | `python -m classify evaluate` wall s (CPU s) |", "|---|---|---|",
        *[f"| {m} | {_seconds(f)} | {_seconds(e)} |" for m, f, e in stage_rows], "",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("reports/bench.md"))
    parser.add_argument("--clips", type=int, default=12, help="audio clips to time step by step")
    parser.add_argument("--speech-clips", type=int, default=720,
                        help="speech clips of the whole runs (720: every real clip; synthetic ones are cycled)")
    parser.add_argument("--corpus-sizes", type=int, nargs="+", default=[240, 720, 2400],
                        help="clips of the growing speech runs (the whole speech set's size reuses its run)")
    parser.add_argument("--av-clips", type=int, default=192,
                        help="audio-visual clips of the whole run (start-up, final merge and exit, about 2 s, are "
                             "an eighth of a 64-clip run)")
    parser.add_argument("--methods", nargs="*", default=["concat", "mfa", "zebra"],
                        help="fusion methods to time with evaluation")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    keep_freed_memory()  # as the workers do, so no step's figure depends on the steps before it
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Each whole run comes right after the step figures it is compared with, and the
        # audio-visual run before the speech runs' minutes of load: this machine's cores slow
        # down under load (the same 64-clip run took 8 % more CPU per clip right after the
        # 2,400-clip run than before it), which would otherwise count as a run's overhead.
        with threadpool_limits(1):
            audio_paths, audio_source = audio_inputs(args.clips, workdir)
            opt_in_rows = bench_opt_in(audio_paths)
            video_paths, video_source = video_inputs(workdir)
            video_rows, video_seconds = bench_video(video_paths)
        runs = {"av": bench_av_run(video_paths, workdir, args.av_clips)}
        with threadpool_limits(1):
            audio_rows, audio_seconds, speedup = bench_audio(audio_paths)
        sources = workdir / "speech-sources"
        sources.mkdir()
        real = (SHARED / "ravdess-speech").is_dir()
        speech, speech_source = audio_inputs(args.speech_clips if real else min(args.speech_clips, 60), sources)
        runs |= bench_speech_runs(speech, args.corpus_sizes, workdir, args.speech_clips)
        stage_rows = bench_stages(workdir / "cache-speech", args.methods, workdir)
    steps_audio = dict(audio_rows)["**emofuse whole audio set (decode, 6 streams, functionals, eGeMAPS)**"]
    steps_av = dict(video_rows)["**whole video set**"] + dict(video_rows)[AV_AUDIO]
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
        "## Opt-in families (`FAMILIES=...`)", "",
        "| family | cost |", "|---|---|",
        *[f"| {name} | {value:.4f} |" if value < 1 else f"| {name} | {value:.1f} |" for name, value in opt_in_rows], "",
        *corpus_lines(runs, args.corpus_sizes, steps_audio, steps_av, stage_rows, speech_source),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
