"""The feature runner on a small synthetic corpus: store contents, resumption, kills, Dask, failures."""

import hashlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import features.store
from extract.errors import EmofuseError
from extract.synthetic import generate_corpus
from features.__main__ import main as features_main
from features.errors import WorkerError
from features import runner
from features.parallel import InlinePool, LocalPool, unordered
from features.runner import (StoreBusyError, default_config, extract_file_features, run_features,
                             store_lock)
from features.store import FeatureStore, check_store, store_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_CLIPS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six clips (both modalities) of one synthetic actor, copied out of a generated corpus."""
    full = generate_corpus(tmp_path_factory.mktemp("full"), actors=1, seed=3, n_jobs=1, progress=False)
    small = tmp_path_factory.mktemp("small")
    stems = sorted(p.stem[3:] for p in full.rglob("03-*.wav"))[::10][:N_CLIPS]
    for stem in stems:
        for prefix, suffix in (("03", ".wav"), ("02", ".mp4")):
            source = next(full.rglob(f"{prefix}-{stem}{suffix}"))
            shutil.copy(source, small / source.name)
    return small


def store_arrays(path):
    """Everything numeric in a store, keyed by family, for exact comparison."""
    with FeatureStore.open(path) as store:
        arrays = {f: store.functionals(families=[f])[0] for f in store.families()}
        for family in store.sequence_families():
            for clip_id in store.clips["clip_id"]:
                arrays[f"{family}/{clip_id}"] = store.sequence(clip_id, family).values
        arrays["clip_id"] = np.array(store.clips["clip_id"])
    return arrays


def assert_same_store(a, b):
    A, B = store_arrays(a), store_arrays(b)
    assert A.keys() == B.keys()
    for key in A:
        np.testing.assert_array_equal(A[key], B[key], err_msg=key)


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """One uninterrupted local run."""
    cache = tmp_path_factory.mktemp("cache")
    summary = run_features("synthetic", corpus, jobs=2, cache_dir=cache, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (N_CLIPS, 0, 0)
    return summary.store


def test_store_holds_every_family(reference, corpus):
    with FeatureStore.open(reference) as store:
        assert len(store) == N_CLIPS and store.failures.empty
        assert set(store.families("audio")) >= {"mfcc", "zcr", "pitch", "energy", "chroma", "mel", "egemaps"}
        assert set(store.families("video")) >= {"hog", "hog_summary", "stip"}
        X, names = store.functionals("audio")
        assert X.shape == (N_CLIPS, len(names)) and len(set(names)) == len(names)
        assert np.isfinite(store.functionals(families=["egemaps"])[0]).all()
        mfcc = store.sequence(store.clips["clip_id"][0], "mfcc")
        assert mfcc.frame_rate == pytest.approx(100.0) and mfcc.values.shape[0] > 250
        assert store.config == default_config()
    assert check_store(reference, expected_ids=set(X_ids(reference))) == []
    assert sorted(p.name for p in reference.parent.iterdir()) == ["features.h5", "features.h5.lock"]  # no frame file


def X_ids(path):
    with FeatureStore.open(path) as store:
        return list(store.clips["clip_id"])


def test_rerun_skips_everything(reference, corpus):
    before = store_arrays(reference)
    summary = run_features("synthetic", corpus, jobs=1, cache_dir=reference.parent.parent, progress=False)
    assert (summary.done, summary.skipped) == (0, N_CLIPS)
    after = store_arrays(reference)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_killed_runs_resume_to_the_same_store(corpus, reference, tmp_path):
    """SIGKILL the CLI at several moments; the store always opens; the final one equals the reference."""
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "features", "extract", "--dataset", "synthetic", "--data-dir", str(corpus),
               "--jobs", "1", "--cache-dir", str(cache), "--no-progress"]
    rng = np.random.default_rng(0)
    for cycle in range(6):
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(1.5, 5.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        path = store_path("synthetic", cache)
        if path.exists():
            assert check_store(path) == [], f"cycle {cycle}"
    assert subprocess.run(command, cwd=REPO, capture_output=True).returncode == 0
    assert_same_store(store_path("synthetic", cache), reference)


def test_shards_are_compacted_in_tiers_and_merges_stay_small(corpus, reference, tmp_path, monkeypatch):
    """One clip per shard and a fan-in of 2: six shards cascade into tiers 1 and 2, no merge
    ever opens more than fan-in + 1 stores, and the store equals the reference."""
    opened, tiers = [], set()
    merge = runner.merge_stores

    def counting_merge(target, sources, **kwargs):
        opened.append(len(sources))
        tiers.update(runner._shard_tier(Path(s)) for s in sources if Path(s).name.startswith("shard-"))
        return merge(target, sources, **kwargs)

    monkeypatch.setattr(runner, "merge_stores", counting_merge)
    monkeypatch.setattr(runner, "SHARD_FAN_IN", 2)
    summary = run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, batch_size=1, progress=False)
    assert summary.done == N_CLIPS
    assert tiers == {0, 1, 2}  # 6 batches: 2 -> tier 1 (x3), 2 tier-1 -> tier 2, final: store of tiers 2 and 1
    assert max(opened) <= 3 and len(opened) == 5
    assert not list(summary.store.parent.glob("features.parts-*"))
    assert_same_store(summary.store, reference)


def test_a_final_merge_that_fails_leaves_the_shards_and_no_frames_file(corpus, reference, tmp_path, monkeypatch):
    """A fresh run whose final merge (completing the frames file) fails loses nothing: the frames
    file is removed, every shard stays, and the next run merges them into the reference store
    without extracting a clip again."""
    copy_rows = features.store._copy_rows  # merges only: shards are written whole

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(features.store, "_copy_rows", failing)
    with pytest.raises(OSError, match="disk full"):
        run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, progress=False)
    folder = store_path("synthetic", tmp_path).parent
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert len(list(folder.glob("features.parts-*/shard-*.h5"))) >= 1
    monkeypatch.setattr(features.store, "_copy_rows", copy_rows)
    summary = run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, progress=False)
    assert (summary.done, summary.skipped) == (0, N_CLIPS)
    assert_same_store(summary.store, reference)


def test_dask_cluster_gives_the_same_store(corpus, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        summary = run_features("synthetic", corpus, jobs=2, cache_dir=tmp_path, scheduler=client, progress=False)
    assert summary.done == N_CLIPS
    assert_same_store(summary.store, reference)


def test_broken_clip_is_listed_and_the_run_goes_on(corpus, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    victim = sorted(data.glob("03-*.wav"))[0]
    victim.write_text("this is a text file, not audio")
    code = features_main(["extract", "--dataset", "synthetic", "--data-dir", str(data),
                          "--cache-dir", str(tmp_path / "cache"), "--jobs", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 3
    assert f"failed [audio] {victim}" in out and "cannot decode audio" in out
    with FeatureStore.open(store_path("synthetic", tmp_path / "cache")) as store:
        assert len(store) == N_CLIPS  # the video of the broken clip still counts
        row = list(store.clips["clip_id"]).index(victim.stem[3:])
        assert np.isnan(store.functionals(families=["mfcc"])[0][row]).all()
        assert np.isfinite(store.functionals(families=["hog"])[0][row]).all()
        assert list(store.failures["stage"]) == ["audio"]


def test_changed_configuration_never_mixes(corpus, tmp_path):
    config = default_config()
    run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, progress=False)
    config["audio"]["n_mfcc"] = 13
    summary = run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, config=config, progress=False)
    assert summary.done == N_CLIPS
    assert len(list((tmp_path / "synthetic").glob("features-*.h5"))) == 1
    with FeatureStore.open(summary.store) as store:
        assert store.functionals(families=["mfcc"])[0].shape[1] < 40 * 3 * 5


def test_extract_file_features_matches_store(corpus, reference):
    with FeatureStore.open(reference) as store:
        clip = store.clips.iloc[0]
        expected, names = store.functionals(families=["mfcc"])
    features = extract_file_features(clip["audio_path"], None, default_config())
    values, file_names = features["mfcc"]
    assert file_names == names
    np.testing.assert_allclose(values, expected[0], rtol=1e-6)
    assert "hog" not in features


def test_families_split_by_modality_and_unknown_names_are_refused():
    config = default_config(["pitch", "stip", "egemaps"])
    assert config["audio"]["families"] == ["pitch", "egemaps"]
    assert config["video"]["families"] == ["stip"]
    audio_only = default_config(["mfcc"])
    assert audio_only["video"]["families"] == default_config()["video"]["families"]
    with pytest.raises(EmofuseError, match="warp_drive"):
        default_config(["mfcc", "warp_drive"])


@pytest.fixture
def audio_only(corpus, tmp_path):
    """The six clips' audio files alone, in a folder of their own."""
    data = tmp_path / "audio-only"
    data.mkdir()
    for wav in sorted(corpus.glob("03-*.wav")):
        shutil.copy2(wav, data / wav.name)
    return data


def test_an_audio_only_store_gets_video_once_the_corpus_has_it(corpus, audio_only, reference, tmp_path):
    first = run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path, progress=False)
    assert first.done == N_CLIPS
    with FeatureStore.open(first.store) as store:
        assert not store.has_modality("video") and set(store.clips["modalities"]) == {"audio"}
    for mp4 in corpus.glob("02-*.mp4"):
        shutil.copy2(mp4, audio_only / mp4.name)
    second = run_features("synthetic", audio_only, jobs=2, cache_dir=tmp_path, progress=False)
    assert (second.done, second.skipped) == (N_CLIPS, 0)
    assert_same_store(second.store, reference)
    with FeatureStore.open(second.store) as store:
        assert set(store.clips["modalities"]) == {"audio video"}


def test_changed_files_and_failed_modalities_are_extracted_again(audio_only, tmp_path):
    wavs = sorted(audio_only.glob("03-*.wav"))
    saved = wavs[0].read_bytes()
    wavs[0].write_text("not audio")
    assert features_main(["extract", "--dataset", "synthetic", "--data-dir", str(audio_only),
                          "--cache-dir", str(tmp_path), "--jobs", "1", "--no-progress"]) == 3
    again = run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path, progress=False)
    assert (again.failed, again.skipped) == (1, N_CLIPS - 1)  # the failure is retried, the rest reused
    wavs[0].write_bytes(saved)  # repaired
    shutil.copy2(wavs[2], wavs[1])  # replaced by another take: new size or time
    fixed = run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path, progress=False)
    assert (fixed.done, fixed.failed, fixed.skipped) == (2, 0, N_CLIPS - 2)
    with FeatureStore.open(fixed.store) as store:
        assert store.failures.empty
        X, _ = store.functionals(families=["mfcc"])
        np.testing.assert_array_equal(X[1], X[2])


def test_clips_gone_from_the_corpus_are_left_out_then_pruned(audio_only, tmp_path, capsys):
    run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path, progress=False)
    gone = sorted(audio_only.glob("03-*.wav"))[:2]
    for wav in gone:
        wav.unlink()
    args = ["--dataset", "synthetic", "--cache-dir", str(tmp_path)]
    assert features_main(["extract", *args, "--data-dir", str(audio_only), "--jobs", "1", "--no-progress"]) == 0
    assert "2 stored clips are no longer in the corpus" in capsys.readouterr().out
    path = store_path("synthetic", tmp_path)
    with FeatureStore.open(path) as store:
        assert len(store) == N_CLIPS - 2 and store.stale == sorted(w.stem[3:] for w in gone)
        assert store.functionals("audio")[0].shape[0] == N_CLIPS - 2
    assert features_main(["check", str(path)]) == 0
    assert "2 stored clips are no longer in the corpus (not a problem" in capsys.readouterr().out
    assert features_main(["prune", *args]) == 0
    assert "removed 2 clips" in capsys.readouterr().out
    with FeatureStore.open(path, include_stale=True) as store:
        assert len(store) == N_CLIPS - 2 and store.stale == []


def test_another_corpus_under_the_same_name_moves_the_store_aside(audio_only, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for wav in sorted(audio_only.glob("03-*.wav"))[:2]:
        shutil.copy2(wav, other / wav.name)
    run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path / "cache", progress=False)
    summary = run_features("synthetic", other, jobs=1, cache_dir=tmp_path / "cache", progress=False)
    assert "another corpus under the dataset name synthetic" in capsys.readouterr().out
    assert (summary.done, summary.skipped) == (2, 0)
    assert len(list((tmp_path / "cache" / "synthetic").glob("features-*.h5"))) == 1
    with FeatureStore.open(summary.store) as store:
        assert len(store) == 2 and store.corpus["root"] == str(other.resolve())


def test_vocal_channel_song_reaches_the_extraction(audio_only, tmp_path):
    """RAVDESS song takes (vocal channel 02) are read with --vocal-channel song, and the
    Makefile fragment of the last run records it."""
    for wav in sorted(audio_only.glob("03-*.wav"))[:2]:
        wav.rename(wav.with_name("03-02" + wav.name[5:]))
    assert features_main(["extract", "--dataset", "synthetic", "--data-dir", str(audio_only), "--cache-dir",
                          str(tmp_path), "--jobs", "1", "--no-progress", "--vocal-channel", "song"]) == 0
    with FeatureStore.open(store_path("synthetic", tmp_path)) as store:
        assert list(store.clips["vocal_channel"]) == ["song", "song"]
    last = (tmp_path / "last-features.mk").read_text()
    assert f"LAST_DATA_DIR := {audio_only}\n" in last and "LAST_VOCAL_CHANNEL := song\n" in last
    assert "LAST_DATASET := synthetic\n" in last


def test_an_edited_manifest_extracts_only_its_changed_rows(audio_only, tmp_path, capsys):
    """Relabelling a row extracts that clip again and reuses the other; an added row is
    extracted alone; a removed row's clip goes stale.  The store is never moved aside."""
    manifest = tmp_path / "manifest.csv"
    wavs = sorted(audio_only.glob("03-*.wav"))[:3]
    rows = [f"{wav},,happy,A{k}" for k, wav in enumerate(wavs)]
    header = "audio_path,video_path,label,speaker\n"
    manifest.write_text(header + "\n".join(rows[:2]) + "\n")
    first = run_features("manifest", manifest, jobs=1, cache_dir=tmp_path, progress=False)
    manifest.write_text(header + rows[0] + "\n" + rows[1].replace("happy", "sad") + "\n")
    second = run_features("manifest", manifest, jobs=1, cache_dir=tmp_path, progress=False)
    manifest.write_text(header + rows[1].replace("happy", "sad") + "\n" + rows[2] + "\n")
    third = run_features("manifest", manifest, jobs=1, cache_dir=tmp_path, progress=False)
    assert "moved" not in capsys.readouterr().out
    assert [(s.done, s.skipped) for s in (first, second, third)] == [(2, 0), (1, 1), (1, 1)]
    with FeatureStore.open(third.store) as store:
        assert list(store.clips["label"]) == ["sad", "happy"] and list(store.clips["speaker"]) == ["A1", "A2"]
        assert store.corpus["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
        assert store.stale == [wavs[0].stem]


@pytest.mark.parametrize("pool", [InlinePool, lambda: LocalPool(2)], ids=["inline", "local"])
def test_pools_hand_back_every_result_once(pool):
    pool = pool()
    try:
        assert sorted(unordered(pool, pow, range(20), 2)) == [i ** 2 for i in range(20)]
    finally:
        pool.close()


@pytest.mark.skipif(sys.platform != "linux", reason="pipe capacity is set with Linux's F_SETPIPE_SZ")
def test_local_workers_hand_a_whole_clips_result_to_the_pipe_at_once():
    """A result pipe of 64 KiB made each worker wait for the reader thread on every ~320 KB speech clip."""
    import fcntl

    from features.parallel import RESULT_PIPE_BYTES

    pool = LocalPool(2)
    try:
        pipe = pool._executor._result_queue._reader.fileno()
        assert fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) == RESULT_PIPE_BYTES >= 3 * 320_000
    finally:
        pool.close()


def test_a_dying_local_worker_is_a_clear_error():
    pool = LocalPool(2)
    try:
        with pytest.raises(WorkerError, match="worker process died while computing clip 7"):
            list(unordered(pool, os._exit, [7]))
    finally:
        pool.close()


def test_a_second_extraction_of_a_locked_store_stops_at_once(corpus, reference, tmp_path, capsys):
    store = store_path("synthetic", tmp_path)
    store.parent.mkdir()
    shutil.copy2(reference, store)
    digest = hashlib.sha256(store.read_bytes()).hexdigest()
    with store_lock(store, "extraction"):
        files = sorted(store.parent.iterdir())
        with pytest.raises(StoreBusyError, match=f"{store}: another extraction \\(process {os.getpid()}\\) holds "
                                                 "this feature store"):
            run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, progress=False)
        assert features_main(["extract", "--dataset", "synthetic", "--data-dir", str(corpus), "--cache-dir",
                              str(tmp_path), "--jobs", "1", "--no-progress"]) == 2
        assert "another extraction" in capsys.readouterr().err
        assert features_main(["prune", "--dataset", "synthetic", "--cache-dir", str(tmp_path)]) == 2
        assert sorted(store.parent.iterdir()) == files  # no shard folder, no partial file
        assert hashlib.sha256(store.read_bytes()).hexdigest() == digest
    summary = run_features("synthetic", corpus, jobs=1, cache_dir=tmp_path, progress=False)
    assert (summary.done, summary.skipped) == (0, N_CLIPS)


def test_the_store_lock_goes_with_its_process(tmp_path):
    """Released when the holder is killed, and never kept by a forked child (a pool worker that
    outlives its parent)."""
    store = tmp_path / "synthetic" / "features.h5"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from features.runner import store_lock\n"
                               f"with store_lock(Path({str(store)!r}), 'prune'):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(StoreBusyError, match=f"another prune \\(process {holder.pid}\\)"):
            with store_lock(store, "extraction"):
                pass
    finally:
        holder.kill()
        holder.wait()
    child = None
    try:
        with store_lock(store, "extraction"):
            child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
            child.start()
        with store_lock(store, "extraction"):  # the child still runs
            assert child.is_alive()
    finally:
        if child is not None:
            child.kill()
            child.join()


def test_egemaps_descriptors_are_stored_as_a_frame_level_family(audio_only, tmp_path):
    """The opt-in ``egemaps_lld`` family, named in FAMILIES, is stored like emofuse's own
    streams: its 10 ms frames and their 275 functionals, beside the other families."""
    config = default_config(["energy", "egemaps_lld"])
    summary = run_features("synthetic", audio_only, jobs=1, cache_dir=tmp_path, config=config, progress=False)
    assert summary.done == N_CLIPS
    with FeatureStore.open(summary.store) as store:
        assert set(store.families("audio")) == {"energy", "egemaps_lld"}
        X, names = store.functionals(families=["egemaps_lld"])
        assert X.shape == (N_CLIPS, 275) and "F0semitoneFrom27.5Hz_sma3nz_p50" in names
        clip = store.clips["clip_id"].iloc[0]
        frames, energy = store.sequence(clip, "egemaps_lld"), store.sequence(clip, "energy")
        assert frames.values.shape[1] == 25 and frames.frame_rate == 100.0
        assert abs(len(frames.values) - len(energy.values)) <= 6  # the same clip on both 10 ms clocks


def test_shards_close_at_their_size_or_after_their_seconds(monkeypatch):
    """A batch of finished clips is written when it is full or when its first clip has waited
    ``seconds``: few shards on a fast corpus, little lost work on a slow one."""
    now = [0.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])

    def arrivals():
        for t in [0.0, 0.5, 2.1, 2.2, 2.3, 2.4, 5.0]:
            now[0] = t
            yield t

    assert list(runner._batches(arrivals(), 3, 2.0)) == [[0.0, 0.5, 2.1], [2.2, 2.3, 2.4], [5.0]]
    assert list(runner._batches(arrivals(), 100)) == [[0.0, 0.5, 2.1, 2.2, 2.3, 2.4, 5.0]]


FAULTS_OF_REPEATED_TEMPORARIES = """
import resource, sys
import numpy as np
from features.parallel import keep_freed_memory
if sys.argv[1] == "kept":
    keep_freed_memory()
def temporaries():  # six 4 MiB arrays alive at once, as in one clip's features or one fit
    arrays = [np.ones(1 << 19) for _ in range(6)]
    return sum(a.sum() for a in arrays)
temporaries()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    temporaries()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_kept_freed_memory_is_not_zero_filled_again_for_the_next_temporaries():
    faults = {mode: int(subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_TEMPORARIES, mode],
                                       capture_output=True, text=True, check=True).stdout)
              for mode in ("default", "kept")}
    # glibc hands 24 MiB of freed temporaries back and faults them in again: 20 rounds of up
    # to 6,144 pages (about half of that measured); kept for reuse, next to none
    assert faults["default"] > 20 * 1024
    assert faults["kept"] < faults["default"] / 20
