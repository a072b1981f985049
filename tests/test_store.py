"""The HDF5 feature store: schema, plain-h5py readability, merging, checks."""

import h5py
import numpy as np
import pandas as pd
import pytest

import features.store
from features.store import (FAILURE_COLUMNS, FeatureStore, StoreError, _SequenceWriter, check_store, merge_stores,
                            prune_store, write_store)
from features.stream import Stream

CONFIG = {"audio": {"sr": 16000}}


def shard(path, ids, *, failures=(), offset=0.0, config_hash="abc", video=True):
    """A small store with one audio and (optionally) one video family."""
    n = len(ids)
    clips = pd.DataFrame({"clip_id": ids, "speaker": [i[-2:] for i in ids], "label": ["happy"] * n})
    functionals = {"energy": ("audio", np.arange(n * 2, dtype=np.float32).reshape(n, 2) + offset, ["rms_mean", "rms_std"])}
    sequences = {"energy": ("audio", ["rms"], {c: Stream(np.full((3 + k, 1), k + offset), ["rms"], 100.0) for k, c in enumerate(ids)})}
    if video:
        functionals["hog"] = ("video", np.ones((n, 3), np.float32), ["h0", "h1", "h2"])
    write_store(path, dataset="synthetic", config=CONFIG, config_hash=config_hash, versions={"numpy": np.__version__},
                clips=clips, functionals=functionals, sequences=sequences,
                failures=pd.DataFrame(list(failures), columns=FAILURE_COLUMNS))
    return path


def test_roundtrip_and_plain_h5py(tmp_path):
    path = shard(tmp_path / "s.h5", ["b-01", "a-02"])
    with FeatureStore.open(path) as store:
        assert list(store.clips["clip_id"]) == ["b-01", "a-02"]
        X, names = store.functionals()
        assert X.shape == (2, 5) and names == ["rms_mean", "rms_std", "h0", "h1", "h2"]
        assert store.families("audio") == ["energy"] and store.modality_of("hog") == "video"
        seq = store.sequence("a-02", "energy")
        assert seq.values.shape == (4, 1) and seq.frame_rate == 100.0 and seq.names == ["rms"]
        assert store.config == CONFIG and store.has_modality("video")
    with h5py.File(path, "r") as h5:
        assert h5["functionals/energy/values"].shape == (2, 2)
        assert h5["clips/clip_id"].asstr()[()].tolist() == ["b-01", "a-02"]


def test_merge_sorts_dedups_and_newest_wins(tmp_path):
    old = shard(tmp_path / "old.h5", ["c-01", "a-01"], failures=[("z-09", "audio", "z.wav", "cannot decode")])
    new = shard(tmp_path / "new.h5", ["a-01", "b-02", "z-09"], offset=100.0, video=False)
    merge_stores(tmp_path / "m.h5", [old, new])
    with FeatureStore.open(tmp_path / "m.h5") as store:
        assert list(store.clips["clip_id"]) == ["a-01", "b-02", "c-01", "z-09"]
        X, _ = store.functionals(families=["energy"])
        assert X[0, 0] == 100.0  # a-01 from the newer shard
        assert X[2, 0] == 0.0  # c-01 only in the old one
        hog, _ = store.functionals(families=["hog"])
        assert np.isfinite(hog[2]).all() and np.isnan(hog[0]).all()
        assert store.failures.empty  # z-09 was retried and stored
        assert store.sequence("c-01", "energy").values[0, 0] == 0.0
    assert check_store(tmp_path / "m.h5", expected_ids={"a-01", "b-02", "c-01", "z-09"}) == []


@pytest.mark.parametrize("buffer_bytes", [16 << 20, 24])
def test_sequences_survive_merges_exactly_with_their_own_lengths_and_rates(tmp_path, monkeypatch, buffer_bytes):
    """Frames of every clip come back unchanged from the ragged per-family matrix, after a
    merge that takes some clips of a source and not others (runs of rows), also when the
    writer's buffer holds only a few frames (every read and write then splits)."""
    monkeypatch.setattr(_SequenceWriter, "BUFFER_BYTES", buffer_bytes)
    rng = np.random.default_rng(0)
    frames = {c: rng.standard_normal((int(rng.integers(0, 9)), 2)).astype(np.float32) for c in "abcdefg"}
    rates = {c: 25.0 + i for i, c in enumerate("abcdefg")}

    def write(path, ids, shift=0.0):
        streams = {c: Stream(frames[c] + shift, ["x", "y"], rates[c], "dB") for c in ids}
        write_store(path, dataset="synthetic", config=CONFIG, config_hash="abc", versions={},
                    clips=pd.DataFrame({"clip_id": ids}), functionals={},
                    sequences={"pair": ("audio", ["x", "y"], streams)},
                    failures=pd.DataFrame(columns=FAILURE_COLUMNS))
        return path

    old = write(tmp_path / "old.h5", list("abcdef"))
    new = write(tmp_path / "new.h5", ["b", "e", "g"], shift=10.0)  # b and e retried
    merge_stores(tmp_path / "m.h5", [old, new])
    with FeatureStore.open(tmp_path / "m.h5") as store:
        assert sorted(store.sequence_clips("pair")) == list("abcdefg")
        for c in "abcdefg":
            stream = store.sequence(c, "pair")
            expected = frames[c] + (10.0 if c in "beg" else 0.0)
            np.testing.assert_array_equal(stream.values, expected)
            assert stream.frame_rate == rates[c] and stream.unit == "dB" and stream.names == ["x", "y"]
    with h5py.File(tmp_path / "m.h5", "r") as h5:
        group = h5["sequences/pair"]
        assert group["values"].shape == (sum(len(f) for f in frames.values()), 2)
        assert group["offsets"][-1] == len(group["values"])
    assert check_store(tmp_path / "m.h5") == []
    with h5py.File(tmp_path / "m.h5", "r+") as h5:
        h5["sequences/pair/offsets"][-1] += 1
    assert check_store(tmp_path / "m.h5") == ["pair: frame offsets do not match the stored frames"]


def test_merge_refuses_mixed_configurations(tmp_path):
    a = shard(tmp_path / "a.h5", ["a-01"])
    b = shard(tmp_path / "b.h5", ["b-01"], config_hash="other")
    with pytest.raises(StoreError, match="different configurations"):
        merge_stores(tmp_path / "m.h5", [a, b])
    assert not (tmp_path / "m.h5").exists()


def test_check_finds_problems(tmp_path):
    path = shard(tmp_path / "s.h5", ["b-01", "a-02"])
    with h5py.File(path, "a") as h5:
        h5["functionals/energy/values"][0, 1] = np.nan
    problems = check_store(path, expected_ids={"a-02", "b-01", "c-03"})
    assert any("not sorted" in p for p in problems)
    assert any("c-03" in p for p in problems)
    assert any("energy: non-finite" in p for p in problems)
    assert check_store(tmp_path / "absent.h5") == [f"no feature store at {tmp_path / 'absent.h5'}; run `make features DATASET=...` first"]


def test_not_a_store(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.attrs["schema"] = "something else"
    with pytest.raises(StoreError, match="not an emofuse feature store"):
        FeatureStore.open(tmp_path / "x.h5")


def test_stale_clips_are_left_out_aligned_and_pruned(tmp_path, caplog):
    """Rows of clips no longer in the corpus are hidden from clips, functionals, sequences and
    failures, rows stay aligned, and prune_store removes them from the file."""
    path = shard(tmp_path / "s.h5", ["a-01", "b-02", "c-03"], failures=[("z-09", "audio", "z.wav", "cannot decode")])
    corpus = {"root": "/corpus", "manifest_sha256": "", "clip_ids": ["a-01", "c-03"]}
    merge_stores(path, [path], corpus=corpus)
    with caplog.at_level("WARNING"), FeatureStore.open(path) as store:
        assert "2 stored clips are no longer in the corpus and are left out (b-02, z-09)" in caplog.text
        assert list(store.clips["clip_id"]) == ["a-01", "c-03"] and len(store) == 2
        assert store.stale == ["b-02", "z-09"] and store.failures.empty
        X, _ = store.functionals(families=["energy"])
        np.testing.assert_array_equal(X[:, 0], [0.0, 4.0])  # rows 0 and 2 of the file
        assert store.sequence("c-03", "energy").values.shape == (5, 1)
        with pytest.raises(StoreError, match="b-02 is no longer in the corpus"):
            store.sequence("b-02", "energy")
        assert store.corpus["clip_ids"] == ["a-01", "c-03"] and store.corpus["root"] == "/corpus"
    with FeatureStore.open(path, include_stale=True) as everything:
        assert len(everything) == 3 and list(everything.failures["clip_id"]) == ["z-09"]
    assert prune_store(path) == ["b-02", "z-09"]
    with h5py.File(path, "r") as h5:
        assert h5["clips/clip_id"].asstr()[()].tolist() == ["a-01", "c-03"]
        assert h5["sequences/energy/clip_id"].asstr()[()].tolist() == ["a-01", "c-03"] and len(h5["failures/clip_id"]) == 0
    assert prune_store(path) == [] and check_store(path) == []


def test_merge_keeps_the_corpus_record_and_refuses_two_corpora(tmp_path):
    a = shard(tmp_path / "a.h5", ["a-01"])
    merge_stores(a, [a], corpus={"root": "/one", "manifest_sha256": "", "clip_ids": ["a-01", "b-01"]})
    b = shard(tmp_path / "b.h5", ["b-01"])  # a shard: no corpus of its own
    merge_stores(tmp_path / "m.h5", [a, b])
    with FeatureStore.open(tmp_path / "m.h5") as store:
        assert store.corpus == {"root": "/one", "manifest_sha256": "", "clip_ids": ["a-01", "b-01"]}
        assert list(store.clips["clip_id"]) == ["a-01", "b-01"] and store.stale == []
    merge_stores(b, [b], corpus={"root": "/two", "manifest_sha256": "", "clip_ids": ["b-01"]})
    with pytest.raises(StoreError, match="different corpora.*/one, /two"):
        merge_stores(tmp_path / "m2.h5", [a, b])


def test_store_of_another_emofuse_version_says_so(tmp_path):
    path = shard(tmp_path / "s.h5", ["a-01"])
    with h5py.File(path, "a") as h5:
        h5.attrs["schema"] = "emofuse-features/1"
    with pytest.raises(StoreError, match="another emofuse version.*run `make features` again"):
        FeatureStore.open(path)


@pytest.mark.parametrize("copy_bytes", [4 << 20, 40])
def test_merges_of_many_shards_keep_every_clips_values_exactly(tmp_path, monkeypatch, copy_bytes):
    """Shards as a run writes them (clips in the order they finished, some retried in a later
    shard, some failed, a family missing from some), merged in tiers and then with the store
    as the runner does: every clip keeps its newest functionals row and frames, bit for bit,
    also when every read and write is split into blocks of a row or two."""
    monkeypatch.setattr(features.store, "COPY_BYTES", copy_bytes)
    monkeypatch.setattr(_SequenceWriter, "BUFFER_BYTES", copy_bytes)
    rng = np.random.default_rng(1)
    ids = [f"{k:03d}-{k % 7:02d}" for k in range(150)]
    expected, failed = {}, set()  # clip_id -> (functionals by family, frames by family), newest write
    paths = []
    for n, batch in enumerate(np.array_split(rng.permutation(ids + list(rng.choice(ids, 40))), 30)):
        batch = list(dict.fromkeys(batch))
        lost = set(batch[:1]) if n % 5 == 0 else set()  # a failed clip (earlier outcomes are dropped)
        stored = [c for c in batch if c not in lost]
        with_pitch = n % 3 != 0
        values = {"mfcc": rng.standard_normal((len(stored), 5)).astype(np.float32),
                  "pitch": rng.standard_normal((len(stored), 2)).astype(np.float32)}
        frames = {c: rng.standard_normal((int(rng.integers(1, 30)), 3)).astype(np.float32) for c in stored}
        functionals = {"mfcc": ("audio", values["mfcc"], list("abcde"))}
        if with_pitch:
            functionals["pitch"] = ("audio", values["pitch"], ["f0_mean", "f0_std"])
        paths.append(tmp_path / f"shard-{n:02d}.h5")
        write_store(
            paths[-1], dataset="synthetic", config=CONFIG, config_hash="abc", versions={},
            clips=pd.DataFrame({"clip_id": stored, "speaker": [c[-2:] for c in stored]}), functionals=functionals,
            sequences={"mel": ("audio", ["m0", "m1", "m2"], {c: Stream(frames[c], ["m0", "m1", "m2"], 100.0)
                                                             for c in stored})},
            failures=pd.DataFrame([(c, "audio", f"{c}.wav", "cannot decode") for c in lost], columns=FAILURE_COLUMNS))
        for c in lost:
            expected.pop(c, None)
        failed = (failed - set(stored)) | lost
        for row, c in enumerate(stored):
            expected[c] = ({"mfcc": values["mfcc"][row],
                            "pitch": values["pitch"][row] if with_pitch else np.full(2, np.nan, np.float32)}, frames[c])
    tiers = [tmp_path / f"tier-{k}.h5" for k in range(3)]
    for k, tier in enumerate(tiers):
        merge_stores(tier, paths[8 * k:8 * k + 8])
    merge_stores(tmp_path / "store.h5", tiers[:1])
    merge_stores(tmp_path / "store.h5", [tmp_path / "store.h5", *tiers[1:], *paths[24:]])
    with FeatureStore.open(tmp_path / "store.h5") as store:
        assert list(store.clips["clip_id"]) == sorted(expected)
        assert sorted(store.failures["clip_id"]) == sorted(failed)
        assert list(store.clips["speaker"]) == [c[-2:] for c in sorted(expected)]
        for family in ("mfcc", "pitch"):
            X, _ = store.functionals(families=[family])
            np.testing.assert_array_equal(X, np.array([expected[c][0][family] for c in sorted(expected)]))
        for c, (_, frames) in expected.items():
            np.testing.assert_array_equal(store.sequence(c, "mel").values, frames)
    assert check_store(tmp_path / "store.h5", expected_ids=set(ids), nan_allowed={"pitch"}) == []


def test_a_frame_file_completed_by_the_merge_equals_the_merge_that_copies_frames(tmp_path):
    """Frames appended batch by batch, then completed into the store by the final merge: the
    same store as copying the shards' frames, and no file left besides it."""
    rng = np.random.default_rng(1)
    frames, paths = features.store.FrameFile(tmp_path / "framed.h5"), []
    for n, ids in enumerate([["c-01", "a-02"], ["b-01"], ["e-02", "d-01"]]):
        streams = {c: Stream(rng.standard_normal((int(rng.integers(2, 9)), 2)).astype(np.float32), ["m0", "m1"],
                             100.0) for c in ids}
        sequences = {"mel": ("audio", ["m0", "m1"], streams)}
        paths.append(tmp_path / f"shard-{n}.h5")
        write_store(paths[-1], dataset="synthetic", config=CONFIG, config_hash="abc", versions={},
                    clips=pd.DataFrame({"clip_id": ids}),
                    functionals={"mfcc": ("audio", rng.standard_normal((len(ids), 3)).astype(np.float32),
                                          ["a", "b", "c"])},
                    sequences=sequences, failures=pd.DataFrame(columns=FAILURE_COLUMNS))
        frames.append(sequences)
    merge_stores(tmp_path / "copied.h5", paths)
    merge_stores(tmp_path / "framed.h5", paths, frames=frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copied.h5", "framed.h5", "shard-0.h5", "shard-1.h5",
                                                           "shard-2.h5"]
    with FeatureStore.open(tmp_path / "copied.h5") as copied, FeatureStore.open(tmp_path / "framed.h5") as framed:
        pd.testing.assert_frame_equal(framed.clips, copied.clips)
        np.testing.assert_array_equal(framed.functionals()[0], copied.functionals()[0])
        assert framed.sequence_families() == ["mel"]
        assert sorted(framed.sequence_clips("mel")) == list(framed.clips["clip_id"])
        for clip_id in copied.clips["clip_id"]:
            a, b = framed.sequence(clip_id, "mel"), copied.sequence(clip_id, "mel")
            np.testing.assert_array_equal(a.values, b.values)
            assert (a.names, a.frame_rate, a.unit) == (b.names, b.frame_rate, b.unit)
    assert check_store(tmp_path / "framed.h5", expected_ids={"a-02", "b-01", "c-01", "d-01", "e-02"}) == []


def test_a_frame_file_that_lacks_a_merged_clip_is_refused(tmp_path):
    streams = {c: Stream(np.ones((3, 1), np.float32), ["rms"], 100.0) for c in ("a-01", "b-01")}
    path = tmp_path / "shard.h5"
    write_store(path, dataset="synthetic", config=CONFIG, config_hash="abc", versions={},
                clips=pd.DataFrame({"clip_id": list(streams)}), functionals={},
                sequences={"energy": ("audio", ["rms"], streams)}, failures=pd.DataFrame(columns=FAILURE_COLUMNS))
    frames = features.store.FrameFile(tmp_path / "store.h5")
    frames.append({"energy": ("audio", ["rms"], {"a-01": streams["a-01"]})})
    with pytest.raises(StoreError, match="energy frames of exactly the merged clips"):
        merge_stores(tmp_path / "store.h5", [path], frames=frames)
    frames.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.h5"]
