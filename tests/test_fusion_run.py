"""The fusion stage end to end on a small feature store: outputs, leakage, reuse, errors, CLI."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from extract.errors import EmofuseError
from features.stip import DESCRIPTOR_NAMES, POINT_COLUMNS
from features.store import FAILURE_COLUMNS, FeatureStore, store_path, write_store
from features.stream import Stream
from fusion.__main__ import main
from fusion.protocol import RANDOM_SPLIT_WARNING, make_folds
from fusion.run import fuse
from fusion.speaker_norm import ADAPTIVE_LABEL

EMOTIONS = ["angry", "happy", "neutral", "sad"]
NPZ_KEYS = {"X_train", "X_test", "y_train", "y_test", "ids_train", "ids_test", "speakers_train", "speakers_test"}


def clip_table(n_speakers=8, per_class=3):
    rows = [
        {"clip_id": f"{s:02d}-{e}-{r}", "speaker": f"{s + 1:02d}", "label": emotion,
         "gender": "male" if s % 2 else "female", "audio_path": "", "video_path": "", "split": ""}
        for s in range(n_speakers) for e, emotion in enumerate(EMOTIONS) for r in range(per_class)
    ]
    return pd.DataFrame(rows)


def features_of(clips, seed=0, video=True, stip_points=False, text=False):
    """Functionals in which mfcc_0-1 and hog_0-1 carry the class; the first clip has no video;
    ``text``: a 6-column ``text`` family as well (the last clip has none)."""
    rng = np.random.default_rng(seed)
    n = len(clips)
    onehot = np.eye(len(EMOTIONS))[clips["label"].map(EMOTIONS.index).to_numpy()]
    mfcc = rng.normal(size=(n, 10))
    mfcc[:, :2] += 2 * onehot[:, :2]
    functionals = {"mfcc": ("audio", mfcc, [f"mfcc_{i}" for i in range(10)]),
                   "energy": ("audio", rng.normal(size=(n, 3)), ["rms_mean", "rms_std", "log_rms_mean"])}
    sequences = {}
    if video:
        hog = rng.normal(size=(n, 12))
        hog[:, :2] += 2 * onehot[:, 2:]
        stip = rng.normal(size=(n, 5))
        hog[0] = stip[0] = np.nan
        functionals |= {"hog": ("video", hog, [f"hog_{i}" for i in range(12)]),
                        "stip": ("video", stip, [f"stip_{i}" for i in range(5)])}
        if stip_points:
            columns = POINT_COLUMNS + DESCRIPTOR_NAMES
            sequences["stip_points"] = ("video", columns, {
                clip_id: Stream(np.hstack([rng.normal(size=(12, 6)), rng.normal(size=(12, 48)) + 2 * onehot[i, 0]]),
                                columns, 30.0)
                for i, clip_id in enumerate(clips["clip_id"]) if i > 0
            })
    if text:
        embedding = rng.normal(size=(n, 6))
        embedding[-1] = np.nan
        functionals["text"] = ("text", embedding, [f"text_{i:03d}" for i in range(6)])
    return functionals, sequences


def make_store(root, clips=None, dataset="toy", functionals=None, **options):
    """Write a feature store of ``clips`` (default ``clip_table()``) under ``root``."""
    clips = clip_table() if clips is None else clips
    made, sequences = features_of(clips, **options)
    path = store_path(dataset, root)
    write_store(path, dataset=dataset, config={"sr": 16000}, config_hash="cafe", versions={}, clips=clips,
                functionals=functionals or made, sequences=sequences, failures=pd.DataFrame(columns=FAILURE_COLUMNS))
    return path


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_concat_writes_every_fold_of_every_modality(tmp_path):
    with FeatureStore.open(make_store(tmp_path)) as store:
        out = fuse(store, "concat", out_root=tmp_path)
        clips = store.clips
    assert out == tmp_path / "toy" / "fused" / "concat" / "speaker"
    folds = json.loads((out / "folds.json").read_text())
    assert folds["protocol"] == "speaker" and "warning" not in folds and len(folds["folds"]) == 4
    for modality, width, n_missing in (("audio", 13, 0), ("video", 17, 1), ("fused", 30, 0)):
        meta = json.loads((out / modality / "meta.json").read_text())
        assert meta["method"] == "concat" and meta["n_clips_without_modality"] == n_missing
        assert len(meta["input_names"]) == width
        blocks = ["video"] * 17 if modality == "video" else ["audio"] * 13 + ["video"] * 17
        assert meta["output_names"][0] == [f"{b}__{n}" for b, n in zip(blocks, meta["input_names"])]
        for fold in folds["folds"]:
            data = load(out / modality / f"fold-{fold['fold']}.npz")
            assert set(data) == NPZ_KEYS
            assert data["X_train"].dtype == np.float32 and data["y_train"].dtype.kind == "U"
            assert data["X_train"].shape == (len(data["y_train"]), width)
            assert not set(data["speakers_train"]) & set(data["speakers_test"])
            assert set(data["speakers_test"]) == set(fold["test_speakers"])
            assert list(data["ids_test"]) == [i for i in fold["test_ids"] if modality != "video" or i != "00-0-0"]
            # standardised on the training side
            np.testing.assert_allclose(data["X_train"].mean(0), 0, atol=1e-5)
            labels = clips.set_index("clip_id").loc[data["ids_test"], "label"]
            assert list(labels) == list(data["y_test"])


@pytest.mark.parametrize("method, options", [
    ("concat", {"pca": 4}),
    ("zebra+mfa", {"zebra__classifier": "knn", "zebra__budget": 24, "zebra__n_zebras": 4, "mfa__pca": 5}),
    ("mfa", {"speaker_norm": True, "mfa__k1": 3}),
])
def test_training_features_ignore_the_test_side(tmp_path, method, options):
    """Changing every test label and replacing test features leaves the fused training side unchanged."""
    clips = clip_table()
    on_test = clips["clip_id"].isin(make_folds(clips, "speaker")[0].test_ids).to_numpy()
    tampered = clips.copy()
    tampered.loc[on_test, "label"] = tampered.loc[on_test, "label"].map(dict(zip(EMOTIONS, EMOTIONS[::-1])))
    honest_features, _ = features_of(clips)
    other_features, _ = features_of(clips, seed=99)
    tampered_features = {family: (modality, np.where(on_test[:, None], other_features[family][1], values), names)
                         for family, (modality, values, names) in honest_features.items()}
    outputs = []
    for name, table, functionals in (("honest", clips, honest_features), ("tampered", tampered, tampered_features)):
        with FeatureStore.open(make_store(tmp_path / name, clips=table, functionals=functionals)) as store:
            outputs.append(fuse(store, method, out_root=tmp_path / name, **options))
    for modality in ("audio", "video", "fused"):
        honest, tampered_fold = (load(out / modality / "fold-0.npz") for out in outputs)
        np.testing.assert_array_equal(honest["X_train"], tampered_fold["X_train"])
        np.testing.assert_array_equal(honest["y_train"], tampered_fold["y_train"])
        assert not np.allclose(honest["X_test"], tampered_fold["X_test"])


def test_every_fit_runs_on_one_blas_thread(tmp_path, monkeypatch):
    """Threads inside a fit of a few hundred clips cost more than they save (and far more on a
    busy machine): the fusion stage holds BLAS and OpenMP to one thread, as the classify stage does."""
    from threadpoolctl import threadpool_info

    from fusion.methods import SpeakerPipeline

    threads, original = [], SpeakerPipeline.fit

    def recording_fit(self, X, y=None, groups=None):
        threads.append(max((pool["num_threads"] for pool in threadpool_info()), default=1))
        return original(self, X, y, groups)

    monkeypatch.setattr(SpeakerPipeline, "fit", recording_fit)
    with FeatureStore.open(make_store(tmp_path)) as store:
        fuse(store, "concat", protocol="speaker", out_root=tmp_path, progress=False)
    assert threads and set(threads) == {1}


@pytest.mark.parametrize("method, options", [
    ("mfa", {}),
    ("zebra", {"zebra__classifier": "knn", "zebra__budget": 20, "zebra__n_zebras": 4}),
    ("concat", {"stip_bow": 4}),
    ("mfa", {"speaker_norm": "enrol:2"}),
])
def test_folds_fitted_side_by_side_give_the_same_output(tmp_path, method, options):
    """jobs=2 fits folds in two worker processes: every fused fold and meta.json entry (MFA's
    and zebra's choices inside the training speakers, STIP codebooks, enrolment draws) as with
    jobs=1."""
    with FeatureStore.open(make_store(tmp_path, stip_points="stip_bow" in options)) as store:
        serial = fuse(store, method, out_root=tmp_path / "serial", progress=False, **options)
        parallel = fuse(store, method, out_root=tmp_path / "parallel", jobs=2, progress=False, **options)
    files = sorted(p.relative_to(serial) for p in serial.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(parallel) for p in parallel.rglob("*") if p.is_file())
    assert any(f.suffix == ".npz" for f in files) and any(f.name.endswith(".stip_bow.joblib") for f in files) == \
        ("stip_bow" in options)
    for name in files:
        if name.suffix == ".npz":
            a, b = load(serial / name), load(parallel / name)
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        elif name.suffix == ".json":
            assert json.loads((serial / name).read_text()) == json.loads((parallel / name).read_text())


def test_plain_concatenation_fits_its_folds_in_this_process(tmp_path, monkeypatch):
    """Worker start-up costs more than concatenation's folds: jobs=2 starts workers for MFA and a
    STIP codebook only."""
    import fusion.run as run

    workers = []
    original = run.Parallel

    def recording_parallel(n_jobs, **kwargs):
        workers.append(n_jobs)
        return original(n_jobs=n_jobs, **kwargs)

    monkeypatch.setattr(run, "Parallel", recording_parallel)
    with FeatureStore.open(make_store(tmp_path, stip_points=True)) as store:
        for method, options in (("concat", {}), ("concat", {"speaker_norm": "all"}), ("mfa", {}),
                                ("concat", {"stip_bow": 4})):
            workers.clear()
            fuse(store, method, out_root=tmp_path / method, jobs=2, progress=False, **options)
            assert workers and set(workers) == ({2} if method == "mfa" or options.get("stip_bow") else {1})


def test_zebra_meta_names_the_selected_features_per_fold(tmp_path):
    with FeatureStore.open(make_store(tmp_path)) as store:
        out = fuse(store, "zebra", out_root=tmp_path, seed=1, zebra__classifier="knn", zebra__budget=30,
                   zebra__n_zebras=5, zebra__feature_groups="single")
    meta = json.loads((out / "fused" / "meta.json").read_text())
    assert len(meta["selected_features"]) == 4
    for zebra, selected in zip(meta["zebra"], meta["selected_features"]):  # single-column groups, named
        assert zebra["selected_groups"] == selected and zebra["n_evaluations"] <= 30
    for selected, output in zip(meta["selected_features"], meta["output_names"]):
        assert selected == output
        assert {"audio__mfcc_0", "audio__mfcc_1"} <= set(selected) and {"video__hog_0", "video__hog_1"} & set(selected)
        assert len(selected) < 20
    assert meta["params"]["zebra"]["random_state"] == 1


def test_rerun_reuses_matching_output_and_redoes_changed_params(tmp_path, caplog):
    with FeatureStore.open(make_store(tmp_path)) as store:
        out = fuse(store, "mfa", out_root=tmp_path)
        first = (out / "fused" / "fold-0.npz").stat().st_mtime_ns
        with caplog.at_level(logging.INFO, logger="fusion.run"):
            fuse(store, "mfa", out_root=tmp_path)
        assert "reusing" in caplog.text
        assert (out / "fused" / "fold-0.npz").stat().st_mtime_ns == first
        fuse(store, "mfa", out_root=tmp_path, n_components=1, append=False, per_block=False)
    assert load(out / "fused" / "fold-0.npz")["X_train"].shape[1] == 1
    assert not list(out.rglob("*.partial*"))


def test_random_protocol_is_marked_as_inflated(tmp_path):
    with FeatureStore.open(make_store(tmp_path)) as store:
        out = fuse(store, "concat", protocol="random", speaker_norm=True, out_root=tmp_path)
    assert out.parent.name == "concat-snorm"
    folds = json.loads((out / "folds.json").read_text())
    assert folds["warning"] == RANDOM_SPLIT_WARNING and len(folds["folds"]) == 1
    assert json.loads((out / "audio" / "meta.json").read_text())["warning"] == RANDOM_SPLIT_WARNING
    data = load(out / "audio" / "fold-0.npz")
    assert set(data["speakers_train"]) & set(data["speakers_test"])


def test_stip_bag_of_words_is_fitted_per_fold(tmp_path):
    clips = clip_table().assign(split=lambda t: np.where(t["speaker"] <= "06", "train", "test"))
    with FeatureStore.open(make_store(tmp_path, clips=clips, stip_points=True)) as store:
        out = fuse(store, "concat", protocol="manifest", out_root=tmp_path, stip_bow=4)
    meta = json.loads((out / "video" / "meta.json").read_text())
    assert meta["input_names"][-4:] == [f"stip_word_{i}" for i in range(4)]
    assert not any(name.startswith("stip_") and "word" not in name for name in meta["input_names"])
    assert load(out / "video" / "fold-0.npz")["X_train"].shape[1] == 12 + 4
    assert (out / "video" / "fold-0.stip_bow.joblib").is_file()
    assert not (out / "audio" / "fold-0.stip_bow.joblib").exists()


def test_text_is_a_third_modality_and_joins_the_fused_input(tmp_path):
    """Audio, video and text each get folds, and fused holds all three; STIP words stay in the video block."""
    clips = clip_table().assign(split=lambda t: np.where(t["speaker"] <= "06", "train", "test"))
    with FeatureStore.open(make_store(tmp_path, clips=clips, stip_points=True, text=True)) as store:
        out = fuse(store, "concat", protocol="manifest", out_root=tmp_path, stip_bow=4)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["audio", "fused", "text", "video"]
    text = json.loads((out / "text" / "meta.json").read_text())
    assert text["input_names"] == [f"text_{i:03d}" for i in range(6)] and text["stip_bow"] is None
    assert text["n_clips_without_modality"] == 1
    assert not (out / "text" / "fold-0.stip_bow.joblib").exists()
    fused = json.loads((out / "fused" / "meta.json").read_text())
    names = fused["input_names"]
    assert set(names[:13]) == {f"mfcc_{i}" for i in range(10)} | {"rms_mean", "rms_std", "log_rms_mean"}
    assert names[13:] == ([f"hog_{i}" for i in range(12)] + [f"stip_word_{i}" for i in range(4)]
                          + [f"text_{i:03d}" for i in range(6)])
    assert fused["stip_bow"] == 4 and (out / "fused" / "fold-0.stip_bow.joblib").is_file()
    data = load(out / "text" / "fold-0.npz")
    assert data["X_train"].shape[1] == 6 and clips["clip_id"].iloc[-1] not in data["ids_test"]
    assert load(out / "fused" / "fold-0.npz")["X_train"].shape[1] == 13 + 16 + 6


def test_text_only_store_has_one_modality(tmp_path):
    clips = clip_table()
    made, _ = features_of(clips, video=False, text=True)
    with FeatureStore.open(make_store(tmp_path, clips=clips, functionals={"text": made["text"]})) as store:
        out = fuse(store, "concat", out_root=tmp_path, progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["text"]


def test_audio_only_store_gives_audio_only_output(tmp_path):
    with FeatureStore.open(make_store(tmp_path, video=False)) as store:
        out = fuse(store, "concat", out_root=tmp_path)
        with pytest.raises(EmofuseError, match="stip_bow needs video"):
            fuse(store, "concat", out_root=tmp_path, stip_bow=8)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["audio"]


@pytest.mark.parametrize("method, options, message", [
    ("lda", {}, r"unknown fusion method 'lda'; known: concat, mfa, zebra"),
    ("mfa+mfa", {}, "unknown fusion method"),
    ("mfa", {"pca": 3}, "parameter 'pca' belongs to concat and mfa"),
    ("concat", {"k1": 3}, "parameter 'k1' belongs to no step"),
])
def test_bad_requests(tmp_path, method, options, message):
    with FeatureStore.open(make_store(tmp_path)) as store:
        with pytest.raises(EmofuseError, match=message):
            fuse(store, method, out_root=tmp_path, **options)


def test_class_missing_from_training_names_fold_and_class(tmp_path):
    clips = clip_table()
    clips = clips[(clips["label"] != "sad") | (clips["speaker"] == "03")]  # only speaker 03 is sad
    with FeatureStore.open(make_store(tmp_path, clips=clips.reset_index(drop=True))) as store:
        with pytest.raises(EmofuseError, match=r"fold 2 \(test speakers 03\): class\(es\) sad have no audio"):
            fuse(store, "concat", protocol="loso", out_root=tmp_path)


def test_command_line(tmp_path, capsys):
    make_store(tmp_path)
    args = ["--dataset", "toy", "--method", "mfa", "--cache-dir", str(tmp_path), "--param", "mfa__n_components=2",
            "--param", "mfa__append=false", "--param", "mfa__per_block=false"]
    assert main(args) == 0
    data = load(tmp_path / "toy" / "fused" / "mfa" / "speaker" / "fused" / "fold-3.npz")
    assert data["X_test"].shape[1] == 2
    assert main(["--dataset", "missing", "--method", "concat", "--cache-dir", str(tmp_path)]) == 2
    assert "run `make features DATASET=missing` first" in capsys.readouterr().err
    assert main(["--dataset", "toy", "--method", "pca", "--cache-dir", str(tmp_path)]) == 2
    assert "known: concat, mfa, zebra" in capsys.readouterr().err


def test_enrolment_folds_leave_the_enrolment_clips_out_of_the_test_side(tmp_path):
    """enrol:K: K clips per test speaker (drawn without labels) normalise it and are not scored;
    training speakers are normalised with their own clips, as with all clips."""
    clips = clip_table()
    tampered = clips.assign(label=clips["label"].map(dict(zip(EMOTIONS, EMOTIONS[::-1]))))
    outputs = {}
    for name, table, mode in (("all", clips, "all"), ("enrol", clips, "enrol:2"), ("relabelled", tampered, "enrol:2")):
        with FeatureStore.open(make_store(tmp_path / name, clips=table)) as store:
            outputs[name] = fuse(store, "concat", speaker_norm=mode, out_root=tmp_path / name, progress=False)
    assert outputs["all"].parent.name == "concat-snorm" and outputs["enrol"].parent.name == "concat-enrol2"
    folds = json.loads((outputs["enrol"] / "folds.json").read_text())
    assert folds["adaptation"] == ADAPTIVE_LABEL and folds["speaker_independent"] is True
    meta = json.loads((outputs["enrol"] / "audio" / "meta.json").read_text())
    assert meta["speaker_norm"] == "enrol:2" and meta["adaptation"] == ADAPTIVE_LABEL
    for fold in folds["folds"]:
        k = fold["fold"]
        every, enrol, relabelled = (load(outputs[n] / "audio" / f"fold-{k}.npz")
                                    for n in ("all", "enrol", "relabelled"))
        np.testing.assert_allclose(enrol["X_train"], every["X_train"], atol=1e-6)
        left_out = sorted(set(every["ids_test"]) - set(enrol["ids_test"]))
        assert len(left_out) == 2 * len(fold["test_speakers"])
        assert len(enrol["ids_test"]) == len(every["ids_test"]) - len(left_out)
        assert list(relabelled["ids_test"]) == list(enrol["ids_test"])  # the draw reads no label
        # the same enrolment clips leave every modality
        assert set(load(outputs["enrol"] / "video" / f"fold-{k}.npz")["ids_test"]) <= set(enrol["ids_test"])


def test_manifest_split_sharing_speakers_is_labelled(tmp_path):
    clips = clip_table()
    clips["split"] = np.where(clips["clip_id"].str.endswith("-0"), "test", "train")  # every speaker on both sides
    with FeatureStore.open(make_store(tmp_path, clips=clips)) as store:
        out = fuse(store, "concat", protocol="manifest", out_root=tmp_path, progress=False)
    folds = json.loads((out / "folds.json").read_text())
    assert folds["warning"].startswith("speaker-overlapping split (the corpus's own)")
    assert folds["speaker_independent"] is False
    assert json.loads((out / "audio" / "meta.json").read_text())["warning"] == folds["warning"]
    clean = clip_table().assign(split=lambda t: np.where(t["speaker"] <= "06", "train", "test"))
    with FeatureStore.open(make_store(tmp_path / "clean", clips=clean)) as store:
        out = fuse(store, "concat", protocol="manifest", out_root=tmp_path / "clean", progress=False)
    assert "warning" not in json.loads((out / "folds.json").read_text())


def test_command_line_speaker_norm_modes(tmp_path, capsys):
    make_store(tmp_path)
    base = ["--dataset", "toy", "--method", "concat", "--cache-dir", str(tmp_path), "--no-progress"]
    assert main(base + ["--speaker-norm"]) == 0
    assert (tmp_path / "toy" / "fused" / "concat-snorm" / "speaker" / "folds.json").is_file()
    assert main(base + ["--speaker-norm", "enrol:2", "--protocol", "loso"]) == 0
    assert (tmp_path / "toy" / "fused" / "concat-enrol2" / "loso" / "folds.json").is_file()
    assert main(base + ["--speaker-norm", "none"]) == 0
    assert (tmp_path / "toy" / "fused" / "concat" / "speaker" / "folds.json").is_file()
    capsys.readouterr()
    assert main(base + ["--speaker-norm", "enrol:x"]) == 2
    assert "unknown speaker normalisation 'enrol:x'" in capsys.readouterr().err
