"""Evaluation end to end on a small store and fused folds written here: results, report, model."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from classify import evaluate as evaluate_module
from classify import report
from classify.metrics import fold_scores
from classify.__main__ import main
from classify.classifiers import CLASSIFIERS, ClassifierSpec, GramRbfSVC, make_classifier, parse_classifiers
from classify.evaluate import evaluate
from classify.report import BASELINE_METHOD
from classify.frames import clip_sequences
from extract.errors import EmofuseError
from features.store import FAILURE_COLUMNS, FeatureStore, store_path, write_store
from features.stream import Stream
from fusion.methods import build_pipeline
from fusion.protocol import make_folds
from fusion.run import fuse, modality_matrix
from fusion.speaker_norm import ADAPTIVE_LABEL, speaker_zscore

DATASET = "toy"
EMOTIONS = ["angry", "happy", "neutral", "sad"]
SPEAKERS = ["01", "02", "03", "04", "05", "06"]
FAMILIES = {"audio": ["mfcc", "egemaps"], "video": ["hog_summary"], "fused": ["mfcc", "egemaps", "hog_summary"]}
REQUIRED_KEYS = {"protocol", "modality", "method", "classifier", "accuracy", "ua", "macro_f1",
                 "accuracy_std", "ua_std", "folds"}


def write_toy_store(cache, *, shuffle_labels=False, seed=0, split="", compare=False):
    """6 speakers x 4 emotions x 6 clips; each family carries the emotion in a few columns
    (plus a speaker offset and noise) unless ``shuffle_labels`` breaks the link.  ``split``:
    the clips' ``split`` column (a value, or a function of the take number 0-5); ``compare``:
    a ComParE-named audio family too."""
    rng = np.random.default_rng(seed)
    rows = [(s, e, r) for s in SPEAKERS for e in EMOTIONS for r in range(6)]
    clips = pd.DataFrame({"clip_id": [f"{s}-{e}-{r}" for s, e, r in rows], "speaker": [s for s, _, _ in rows],
                          "label": [e for _, e, _ in rows], "gender": [["female", "male"][int(s) % 2] for s, _, _ in rows],
                          "audio_path": "", "video_path": "",
                          "split": [split(r) if callable(split) else split for _, _, r in rows]})
    code = clips["label"].map(EMOTIONS.index).to_numpy()
    speaker = clips["speaker"].astype(int).to_numpy()

    def family(n_columns, n_informative):
        X = rng.normal(size=(len(clips), n_columns)) + 0.5 * speaker[:, None]
        X[np.arange(len(clips)), code % n_informative] += 4.0
        return X.astype(np.float32)

    functionals = {"mfcc": ("audio", family(8, 4), [f"mfcc_{i}_mean" for i in range(8)]),
                   "egemaps": ("audio", family(12, 4), [f"egemaps_{i}" for i in range(12)]),
                   "hog_summary": ("video", family(10, 4), [f"hog_{i}" for i in range(10)])}
    if compare:
        functionals["compare"] = ("audio", family(30, 2), [f"compare_{i}" for i in range(30)])
    if shuffle_labels:
        clips["label"] = rng.permutation(clips["label"].to_numpy())
    ids = clips["clip_id"].tolist()
    sequences = {
        "mfcc": ("audio", ["m0", "m1"], {c: Stream(np.c_[np.arange(20), np.full(20, k)], ["m0", "m1"], 100.0)
                                         for k, c in enumerate(ids)}),
        "hog": ("video", ["h0"], {c: Stream(np.arange(6)[:, None] * 10.0, ["h0"], 30.0) for c in ids}),
    }
    path = store_path(DATASET, cache)
    write_store(path, dataset=DATASET, config={"audio": {"sr": 16000}}, config_hash="toyhash", versions={},
                clips=clips, functionals=functionals, sequences=sequences,
                failures=pd.DataFrame([], columns=FAILURE_COLUMNS))
    return path


def write_fused(cache, method="concat", protocols=("speaker", "random")):
    """Fused folds as the fusion stage writes them, with an imputer + scaler as the transformer."""
    with FeatureStore.open(store_path(DATASET, cache)) as store:
        clips = store.clips
        for protocol in protocols:
            folds = make_folds(clips, protocol)
            root = cache / DATASET / "fused" / method / protocol
            root.mkdir(parents=True)
            document = {"protocol": protocol, "folds": [f.to_dict() for f in folds]}
            (root / "folds.json").write_text(json.dumps(document | ({"warning": "inflated"} if protocol == "random" else {})))
            for modality, families in FAMILIES.items():
                X, names = store.functionals(families=families)
                (root / modality).mkdir()
                (root / modality / "meta.json").write_text(json.dumps({"method": method, "params": {}, "input_names": names,
                                                                       "output_names": names}))
                for fold in folds:
                    train = clips["clip_id"].isin(fold.train_ids).to_numpy()
                    test = clips["clip_id"].isin(fold.test_ids).to_numpy()
                    y = clips["label"].to_numpy(str)
                    transformer = make_pipeline(SimpleImputer(), StandardScaler()).fit(X[train], y[train])
                    np.savez(root / modality / f"fold-{fold.fold}.npz",
                             X_train=transformer.transform(X[train]).astype(np.float32),
                             X_test=transformer.transform(X[test]).astype(np.float32),
                             y_train=y[train], y_test=y[test],
                             ids_train=clips["clip_id"].to_numpy(str)[train], ids_test=clips["clip_id"].to_numpy(str)[test],
                             speakers_train=clips["speaker"].to_numpy(str)[train],
                             speakers_test=clips["speaker"].to_numpy(str)[test])
                    joblib.dump(transformer, root / modality / f"fold-{fold.fold}.joblib")


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """An easy corpus, evaluated once with svm and knn on both protocols."""
    root = tmp_path_factory.mktemp("easy")
    write_toy_store(root / "cache")
    write_fused(root / "cache")
    summary = evaluate(DATASET, "concat", "svm,knn", cache_dir=root / "cache", reports_dir=root / "reports")
    return root, summary


def _result(results, protocol, modality, method, classifier):
    return next(r for r in results if (r["protocol"], r["modality"], r["method"], r["classifier"])
                == (protocol, modality, method, classifier))


def test_compare_baseline_row_where_the_store_has_compare(tmp_path):
    """ComParE + logistic regression is a baseline row beside eGeMAPS, on the same folds,
    scored as a plain logistic regression on those columns scores."""
    write_toy_store(tmp_path / "cache", compare=True)
    write_fused(tmp_path / "cache", protocols=("speaker",))
    evaluate(DATASET, "concat", "knn", cache_dir=tmp_path / "cache", reports_dir=tmp_path / "reports")
    metrics = json.loads((tmp_path / "reports" / DATASET / "metrics.json").read_text())
    row = _result(metrics["results"], "speaker", "audio", "compare-baseline", "logreg")
    assert _result(metrics["results"], "speaker", "audio", BASELINE_METHOD, "logreg")
    with FeatureStore.open(store_path(DATASET, tmp_path / "cache")) as store:
        X, _ = store.functionals(families=["compare"])
        clips = store.clips
    y = clips["label"].to_numpy(str)
    expected = []
    for fold in make_folds(clips, "speaker"):
        train, test = clips["clip_id"].isin(fold.train_ids).to_numpy(), clips["clip_id"].isin(fold.test_ids).to_numpy()
        predicted = make_classifier("logreg").fit(X[train], y[train]).predict(X[test])
        expected.append(fold_scores(y[test], predicted, EMOTIONS)["ua"])
    # only two of the four emotions are readable from this family: UA near 0.5, not 1
    assert row["ua"] == pytest.approx(np.mean(expected)) and 0.3 < row["ua"] < 0.8
    report_text = (tmp_path / "reports" / DATASET / "report.md").read_text()
    assert "| audio | compare-baseline | logreg |" in report_text


def test_metrics_json_structure_and_easy_scores(easy):
    root, summary = easy
    metrics = json.loads((root / "reports" / DATASET / "metrics.json").read_text())
    keys = {(r["protocol"], r["modality"], r["method"], r["classifier"]) for r in metrics["results"]}
    expected = {(p, m, "concat", c) for p in ("speaker", "random") for m in ("audio", "video", "fused")
                for c in ("svm", "knn")} | {(p, "audio", BASELINE_METHOD, "logreg") for p in ("speaker", "random")}
    assert keys == expected and len(metrics["results"]) == len(expected)
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        n_folds = len(make_folds(store.clips, "speaker"))
    for entry in metrics["results"]:
        assert REQUIRED_KEYS <= entry.keys()
        assert all(0.0 <= entry[k] <= 1.0 for k in ("accuracy", "ua", "macro_f1"))
        assert set(entry["per_class"]) == set(EMOTIONS) == set(entry["labels"])
        assert np.sum(entry["confusion"]) == sum(f["n_test"] for f in entry["folds"])
        assert len(entry["folds"]) == (1 if entry["protocol"] == "random" else n_folds)
        assert entry["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in entry["folds"]]))
        assert entry["ua_std"] == pytest.approx(np.std([f["ua"] for f in entry["folds"]], ddof=1)
                                                if len(entry["folds"]) > 1 else 0.0)
        for fold in entry["folds"]:
            assert np.sum(fold["confusion"]) == fold["n_test"]
            assert sorted(fold["per_speaker_accuracy"]) == fold["test_speakers"]
            assert set(fold["per_class"]) == set(EMOTIONS)
    # every speaker is tested exactly once under the speaker protocol
    fused = _result(metrics["results"], "speaker", "fused", "concat", "svm")
    tested = [s for fold in fused["folds"] for s in fold["test_speakers"]]
    assert sorted(tested) == SPEAKERS
    # the emotion is easy to read from every family
    for modality in ("audio", "video", "fused"):
        assert _result(metrics["results"], "speaker", modality, "concat", "svm")["ua"] > 0.9
    assert _result(metrics["results"], "speaker", "audio", BASELINE_METHOD, "logreg")["ua"] > 0.9
    # the headline: nested selection inside the training speakers, on the speaker-independent protocol only
    assert set(metrics["selected"]) == {"speaker"} and summary["selected"].keys() == {"speaker"}
    selected = metrics["selected"]["speaker"]
    assert selected["how"] == "inner speaker-grouped CV on training speakers"
    assert selected["ua"] > 0.9 and {"accuracy", "macro_f1", "ua_std"} <= selected.keys()
    assert [f["fold"] for f in selected["folds"]] == [f["fold"] for f in fused["folds"]]
    assert selected["ua"] == pytest.approx(np.mean([f["ua"] for f in selected["folds"]]))
    assert len(selected["candidates"]) == 3 * 2  # modalities x classifiers of the one fused method
    assert len(selected["chosen"]) == n_folds
    for chosen in selected["chosen"]:
        assert {"modality", "method", "classifier", "params"} <= chosen.keys() and chosen["method"] == "concat"
        assert {k: chosen[k] for k in ("modality", "method", "classifier")} in [
            {k: c[k] for k in ("modality", "method", "classifier")} for c in selected["candidates"]]
    assert summary["best"]["protocol"] == "speaker" and summary["best"]["none"]["chosen"]["inner_ua"] > 0.9


def test_report_md_tables_protocols_and_figures(easy):
    root, _ = easy
    report_dir = root / "reports" / DATASET
    text = (report_dir / "report.md").read_text()
    for expected in ("## Speaker-independent folds (protocol `speaker`)", "## Random 80/20 split",
                     "UA gap (points)", "| modality | fusion method | classifier | UA (%) | accuracy (%) | macro-F1 (%)",
                     "| fused | concat | svm |", f"| audio | {BASELINE_METHOD} | logreg |", "## Final model",
                     "| speaker | test fold | accuracy (%) |"):
        assert expected in text, expected
    # the selected figure first, then the full table under a heading that calls its maximum optimistic
    headline = text.index("## Selected pipeline (nested selection)")
    table = text.index("## All results: the maximum over methods x classifiers is optimistic "
                       "(chosen on the test folds)")
    assert headline < table < text.index("| fused | concat | svm |")
    assert "| speaker | none | **" in text[headline:table]
    assert "±" in text and "PROTOCOL=random" not in text
    figures = [line[line.index("(") + 1:-1] for line in text.splitlines() if line.startswith("![")]
    assert any("confusion_random_concat_fused" in f for f in figures)
    assert any(f.startswith("figures/per_class_speaker") for f in figures)
    assert "figures/space_concat.png" in figures
    for figure in figures:
        data = (report_dir / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert not list(report_dir.rglob(".*.partial*"))


def _streams(store, clip_id) -> dict:
    """Every frame-level stream a stored clip has (STIP points included)."""
    found = {}
    for family in store.sequence_families():
        try:
            found[family] = store.sequence(clip_id, family)
        except EmofuseError:  # the clip lacks it
            pass
    return found


def _fake_extract(store_dir, calls, dataset=DATASET):
    """clip_features that returns a stored clip's functionals and streams (clip id = file stem,
    or the transcript of a text-only clip)."""
    with FeatureStore.open(store_path(dataset, store_dir)) as store:
        features = {f: store.functionals(families=[f]) for f in store.families()}
        rows = {clip_id: i for i, clip_id in enumerate(store.clips["clip_id"])}
        streams = {c: _streams(store, c) for c in rows}

    def extract(audio_path, video_path, text, config):
        calls.append((audio_path, video_path, text, config))
        clip_id = Path(video_path or audio_path).stem if (video_path or audio_path) else text
        return {f: (X[rows[clip_id]], names) for f, (X, names) in features.items()}, streams[clip_id]
    return extract


def test_saved_model_is_the_whole_chosen_method(easy, monkeypatch, capsys):
    """model.joblib reproduces, value for value, the chosen candidate refitted on all clips."""
    predict = pytest.importorskip("classify.predict")
    root, summary = easy
    model = predict.load_model(root / "reports" / DATASET / "model.joblib")
    fitted = model.variants["none"]
    chosen = summary["best"]["none"]["chosen"]
    assert (fitted.candidate.modality, fitted.candidate.method_dir, fitted.candidate.classifier) == (
        chosen["modality"], chosen["method"], chosen["classifier"]) and sorted(fitted.labels) == EMOTIONS
    assert "adaptive" not in model.variants
    # the same candidate built from its parts and fitted on every clip of the store gives the same probabilities
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        X, names, blocks = modality_matrix(store, fitted.candidate.modality)
        clips = store.clips
    y, speakers = clips["label"].to_numpy(str), clips["speaker"].to_numpy(str)
    fusion = build_pipeline(fitted.candidate.method, blocks).fit(X, y, groups=speakers)
    estimator = make_classifier(fitted.candidate.classifier)
    if not hasattr(estimator, "predict_proba"):
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", ensemble=False,
                                           cv=list(GroupKFold(3).split(X, y, speakers)))
    expected = estimator.fit(fusion.transform(X).astype(np.float32), y).predict_proba(
        fusion.transform(X).astype(np.float32))
    assert names == fitted.input_names

    calls = []
    monkeypatch.setattr(predict, "clip_features", _fake_extract(root / "cache", calls))
    wanted = clips.groupby("label").head(2)
    suffix = ".wav" if predict.needed_modalities(fitted) == {"audio"} else ".mp4"
    table, note = predict.predict_files(model, [f"/new/{c}{suffix}" for c in wanted["clip_id"]])
    assert note is None
    np.testing.assert_allclose(table[fitted.labels].to_numpy(), expected[wanted.index], rtol=1e-5, atol=1e-7)
    assert list(table["predicted"]) == list(wanted["label"])
    assert calls[0][3] == {"audio": {"sr": 16000}}
    with pytest.raises(EmofuseError, match="unknown file type"):
        predict.predict_files(model, ["/new/clip.txt"])
    # the command line prints one row of probabilities per file
    clip = wanted.iloc[-1]
    assert main(["predict", str(root / "reports" / DATASET / "model.joblib"), f"/new/{clip['clip_id']}{suffix}"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].split() == [*fitted.labels, "predicted"] and out[1].split()[-1] == clip["label"]
    # enrolment clips for a model without an adaptive variant: used without them, and it says so
    assert main(["predict", str(root / "reports" / DATASET / "model.joblib"), f"/new/{clip['clip_id']}{suffix}",
                 "--enrol", f"/new/{clip['clip_id']}{suffix}"]) == 0
    assert "no speaker-adaptive variant" in capsys.readouterr().err


def test_results_accumulate_and_are_replaced(easy, tmp_path):
    root, _ = easy
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports", reports)
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    shutil.copytree(cache / DATASET / "fused" / "concat" / "speaker", cache / DATASET / "fused" / "other" / "speaker")
    before = json.loads((reports / DATASET / "metrics.json").read_text())["results"]
    evaluate(DATASET, "other", "knn", cache_dir=cache, reports_dir=reports)
    after = json.loads((reports / DATASET / "metrics.json").read_text())["results"]
    # 3 modalities of knn for "other" added; the speaker baseline entry is replaced, not duplicated
    assert len(after) == len(before) + 3
    assert {r["method"] for r in after} == {"concat", "other", BASELINE_METHOD}
    text = (reports / DATASET / "report.md").read_text()
    assert "| fused | other | knn |" in text and "| fused | concat | svm |" in text


def test_fixed_fusion_parameters_are_what_nested_selection_refits_with(tmp_path, monkeypatch):
    """Parameters given to the fusion stage (the demo fixes MFA's) become the candidates' own, so
    every inner and outer refit of the selection uses them: MFA fits its one setting, never a search."""
    from classify.evaluate import protocol_candidates
    from classify.select import Corpus, nested_selection
    from fusion.mfa import MarginalFisherAnalysisCV

    fixed = {"mfa__pca": 4, "mfa__k1": 3, "mfa__n_components": None, "mfa__append": False, "mfa__per_block": False}
    cache = tmp_path / "cache"
    with FeatureStore.open(write_toy_store(cache)) as store:
        fuse(store, "mfa", protocol="speaker", out_root=cache, progress=False, **fixed)
        folds = json.loads((cache / DATASET / "fused" / "mfa" / "speaker" / "folds.json").read_text())["folds"]
        found = protocol_candidates(cache / DATASET / "fused", "speaker", folds, ["logreg", "knn"])
        corpus = Corpus.from_store(store, ["audio", "fused"])
    assert {c.params for c in found} == {tuple(sorted(fixed.items()))}
    fitted = []
    original = MarginalFisherAnalysisCV.fit

    def recording_fit(self, X, y, groups=None):
        fitted.append(self)
        return original(self, X, y, groups)

    monkeypatch.setattr(MarginalFisherAnalysisCV, "fit", recording_fit)
    nested_selection(corpus, folds[:1], [c for c in found if c.modality in ("audio", "fused")], progress=False)
    assert len(fitted) == 2 * 4 + 1  # 2 modalities x 4 inner splits, then the chosen candidate's outer refit
    for mfa in fitted:
        assert {f"mfa__{k}": v for k, v in mfa.best_params_.items() if f"mfa__{k}" in fixed} == fixed
        assert len(mfa.search_results_) == 1 and np.isnan(mfa.best_score_)


def test_a_dict_fusion_parameter_survives_selection_and_its_description(tmp_path, monkeypatch):
    """A per-block parameter (``concat__pca={"audio": 3}``, a dict in JSON) is a hashable
    candidate, comes back from its JSON description, and reaches every refit as a dict."""
    from classify.evaluate import protocol_candidates
    from classify.model import Candidate
    from classify.select import Corpus, nested_selection
    from fusion.concat import BlockConcat

    cache = tmp_path / "cache"
    with FeatureStore.open(write_toy_store(cache)) as store:
        fuse(store, "concat", protocol="speaker", out_root=cache, progress=False, concat__pca={"audio": 3})
        folds = json.loads((cache / DATASET / "fused" / "concat" / "speaker" / "folds.json").read_text())["folds"]
        found = protocol_candidates(cache / DATASET / "fused", "speaker", folds, ["logreg", "knn"])
        corpus = Corpus.from_store(store, ["audio"])
    audio = [c for c in found if c.modality == "audio"]
    assert len(audio) == 2 and len(set(found)) == len(found)
    described = json.loads(json.dumps(audio[0].describe()))
    assert described["params"] == {"concat__pca": {"audio": 3}}
    assert Candidate.from_description(described) == audio[0]
    fitted = []
    original = BlockConcat.fit

    def recording_fit(self, X, y=None):
        fitted.append(self.pca)
        return original(self, X, y)

    monkeypatch.setattr(BlockConcat, "fit", recording_fit)
    figure = nested_selection(corpus, folds[:1], audio, progress=False)
    assert fitted == [{"audio": 3}] * (4 + 1)  # 4 inner splits, then the chosen candidate's outer refit
    assert 0 <= figure["ua"] <= 1


def test_shuffled_labels_are_near_chance(tmp_path):
    cache = tmp_path / "cache"
    write_toy_store(cache, shuffle_labels=True)
    write_fused(cache, protocols=("speaker",))
    summary = evaluate(DATASET, "concat", "knn", cache_dir=cache, reports_dir=tmp_path / "reports")
    for entry in summary["results"]:
        assert entry["ua"] < 0.45, entry  # chance is 0.25 with 4 classes
    text = (tmp_path / "reports" / DATASET / "report.md").read_text()
    assert f"make fuse DATASET={DATASET} METHOD=concat PROTOCOL=random" in text


def test_errors_name_the_fix(tmp_path, capsys):
    with pytest.raises(EmofuseError, match=f"make fuse DATASET={DATASET} METHOD=nope"):
        evaluate(DATASET, "nope", "svm", cache_dir=tmp_path, reports_dir=tmp_path)
    with pytest.raises(EmofuseError, match="known: all, light, svm, rf"):
        parse_classifiers("svm,forest")
    assert main(["evaluate", "--dataset", DATASET, "--method", "concat", "--classifier", "boost",
                 "--cache-dir", str(tmp_path)]) == 2
    assert "unknown classifier 'boost'" in capsys.readouterr().err
    with pytest.raises(EmofuseError, match="needs blocks"):
        make_classifier("attention_fusion")


def test_classifier_registry():
    assert parse_classifiers("light") == ["svm", "rf", "logreg", "knn", "mlp"]
    assert parse_classifiers("all") == [n for n in CLASSIFIERS if n != "omsn-mgo"]  # 30 trainings a fold
    assert parse_classifiers("all,omsn-mgo")[-1] == "omsn-mgo"
    assert parse_classifiers("knn, svm,knn") == ["knn", "svm"]
    assert {"cnn1d", "bilstm_sa", "attention_fusion"} <= CLASSIFIERS.keys()
    svm = make_classifier("svm")
    assert svm.named_steps["classifier"].class_weight == "balanced" and svm.named_steps["classifier"].gamma == "scale"
    # networks are imported lazily: the registry alone does not load torch
    code = "import sys, classify.classifiers; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


@pytest.mark.parametrize("max_kernel_mb", [256, 0])  # the kernel computed up front; libsvm's own
def test_gram_svm_decides_as_scikit_learns_rbf_svm(max_kernel_mb):
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 1.5, (4, 30))
    y = np.repeat(["angry", "calm", "happy", "sad"], [50, 30, 40, 20])
    X = ((centres[np.searchsorted(["angry", "calm", "happy", "sad"], y)] + rng.normal(0, 2, (140, 30))) * 3
         + 7).astype(np.float32)  # as fused folds hold them
    X_test = rng.normal(7, 6, (60, 30))
    reference = SVC(kernel="rbf", C=3.0, gamma="scale", class_weight="balanced").fit(X, y)
    gram = GramRbfSVC(C=3.0, class_weight="balanced", max_kernel_mb=max_kernel_mb).fit(X, y)
    assert gram.gamma_ == pytest.approx(1 / (30 * X.astype(np.float64).var()), rel=1e-12)
    assert (gram.support_rows_ is None) == (max_kernel_mb == 0)
    np.testing.assert_allclose(gram.decision_function(X_test), reference.decision_function(X_test), atol=1e-9)
    np.testing.assert_array_equal(gram.predict(X_test), reference.predict(X_test))
    assert list(gram.classes_) == ["angry", "calm", "happy", "sad"]
    # a fixed gamma, and the C grid of svm-tuned reaching it through the pipeline
    fixed = GramRbfSVC(C=0.5, gamma=0.01).fit(X, y)
    np.testing.assert_allclose(fixed.decision_function(X_test),
                               SVC(C=0.5, gamma=0.01).fit(X, y).decision_function(X_test), atol=1e-9)
    assert make_classifier("svm").set_params(classifier__C=10.0).named_steps["classifier"].C == 10.0


def test_clip_sequences_average_streams_onto_the_slowest(tmp_path):
    write_toy_store(tmp_path)
    with FeatureStore.open(store_path(DATASET, tmp_path)) as store:
        audio, fused = clip_sequences(store, ["01-sad-2"], "audio")[0], clip_sequences(store, ["01-sad-2"], "fused")[0]
    np.testing.assert_array_equal(audio, np.c_[np.arange(20), np.full(20, 20)])  # 100 fps, unchanged (clip 20)
    # fused: on the 6 HOG frames (30 fps); audio frame i (value i) falls in HOG frame floor(0.3 i):
    # frames 0-3, 4-6, 7-9, 10-13, 14-16, 17-19
    assert fused.shape == (6, 3)
    np.testing.assert_allclose(fused[:, 0], [1.5, 5, 8, 11.5, 15, 18])
    np.testing.assert_array_equal(fused[:, 2], 10 * np.arange(6))


def test_tuned_svm_picks_c_inside_training_speakers():
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b"], 60)
    X = rng.normal(size=(120, 3)) + 2.5 * (y == "b")[:, None]
    speakers = np.tile(["s1", "s2", "s3", "s4", "s5", "s6"], 20)
    test = np.isin(speakers, ["s5", "s6"])
    split = evaluate_module.Split(0, X[~test], X[test], y[~test], y[test], speakers[~test], speakers[test])
    (fold,) = evaluate_module.cross_validate(lambda: make_classifier("svm-tuned"), [split], groups=True)
    assert fold["ua"] > 0.85 and fold["test_speakers"] == ["s5", "s6"]
    with pytest.raises(EmofuseError, match="needs at least 2, got 0"):  # no speakers given
        evaluate_module.cross_validate(lambda: make_classifier("svm-tuned"), [split])


def test_cross_validation_scores_do_not_depend_on_workers():
    """Folds fitted in two worker processes give the figures of a sequential run, in fold order."""
    rng = np.random.default_rng(3)
    y = np.repeat(["a", "b", "c"], 40)
    X = rng.normal(size=(120, 30)) + (y == "b")[:, None] - (y == "c")[:, None]
    speakers = np.tile(["s1", "s2", "s3", "s4"], 30)
    splits = [evaluate_module.Split(k, X[speakers != s], X[speakers == s], y[speakers != s], y[speakers == s],
                                    speakers[speakers != s], speakers[speakers == s])
              for k, s in enumerate(["s1", "s2", "s3", "s4"])]
    build = lambda: make_classifier("logreg", random_state=0)  # noqa: E731
    sequential = evaluate_module.cross_validate(build, splits)
    parallel = evaluate_module.cross_validate(build, splits, n_jobs=2)
    assert [f["fold"] for f in parallel] == [0, 1, 2, 3] and parallel == sequential
    assert np.mean([f["ua"] for f in sequential]) > 0.6
    # several runs in one queue: each run's figures, in run and fold order, its splits read as the queue reaches them
    events = []

    def runs():
        for name in ("logreg", "knn", "svm"):
            events.append(f"built {name}")
            yield (lambda name=name: events.append(f"fit {name}") or make_classifier(name, random_state=0)), splits, \
                False

    queued = evaluate_module.cross_validate_runs(runs(), total=12)
    assert queued[0] == sequential and len(queued) == 3
    assert queued[1] == evaluate_module.cross_validate(lambda: make_classifier("knn", random_state=0), splits)
    assert events.index("built svm") > events.index("fit logreg")
    assert evaluate_module.cross_validate_runs(runs(), n_jobs=2) == queued


def test_tuned_svm_with_few_training_speakers():
    """Two training speakers: two inner folds instead of scikit-learn's ValueError; one: emofuse's message."""
    rng = np.random.default_rng(2)
    y = np.repeat(["a", "b"], 30)
    X = rng.normal(size=(60, 3)) + 2.5 * (y == "b")[:, None]
    two = np.tile(["s1", "s2"], 30)
    tuned = make_classifier("svm-tuned").fit(X, y, groups=two)
    assert tuned.best_params_["classifier__C"] in (0.1, 1.0, 10.0, 100.0)
    assert (tuned.predict(X) == y).mean() > 0.85
    with pytest.raises(EmofuseError, match="at least 2, got 1"):
        make_classifier("svm-tuned").fit(X, y, groups=np.full(60, "s1"))


def test_blocks_align_audio_and_video_rows_by_clip_id():
    def fold(ids_train, X_train):
        ids_train = np.array(ids_train)
        return {"fold": 0, "ids_train": ids_train, "ids_test": np.array(["t"]), "X_train": np.array(X_train, np.float32),
                "X_test": np.array([[9.0] * len(X_train[0])], np.float32), "y_train": np.array(["a"] * len(ids_train)),
                "y_test": np.array(["a"]), "speakers_train": np.array(["s"] * len(ids_train)), "speakers_test": np.array(["u"])}

    folds = {"fused": [fold(["c1", "c2", "c3"], [[0], [0], [0]])],
             "audio": [fold(["c3", "c1", "c2"], [[3], [1], [2]])],
             "video": [fold(["c2", "c1"], [[20, 21], [10, 11]])]}  # c3 has no video
    (split,), blocks = evaluate_module._splits("blocks", folds["fused"], folds, None, "fused")
    assert blocks == (1, 2)
    np.testing.assert_array_equal(split.X_train, [[1, 10, 11], [2, 20, 21], [3, np.nan, np.nan]])
    np.testing.assert_array_equal(split.X_test, [[9, 9, 9]])


def test_merge_metrics_replaces_same_key_and_drops_foreign_schema(tmp_path):
    def entry(method, ua):
        return {"protocol": "speaker", "modality": "fused", "method": method, "classifier": "svm", "ua": ua}

    old = report.merge_metrics({}, [entry("mfa", 0.5), entry("concat", 0.4)], DATASET)
    merged = report.merge_metrics(old, [entry("concat", 0.6)], DATASET)
    assert [(e["method"], e["ua"]) for e in merged["results"]] == [("concat", 0.6), ("mfa", 0.5)]
    report.write_metrics(tmp_path / "metrics.json", merged)
    assert report.read_metrics(tmp_path / "metrics.json") == merged
    (tmp_path / "metrics.json").write_text(json.dumps({"results": [entry("old", 0.9)]}))  # no schema
    assert report.read_metrics(tmp_path / "metrics.json")["results"] == []


def test_predict_file_arguments():
    predict = pytest.importorskip("classify.predict")
    both = {"audio", "video"}
    assert predict._media_of("take.wav+take.mp4", both) == ("take.wav", "take.mp4")
    assert predict._media_of("take.mp4", both) == ("take.mp4", "take.mp4")
    assert predict._media_of("take.mp4", {"audio"}) == ("take.mp4", None)
    with pytest.raises(EmofuseError, match="give a video file"):
        predict._media_of("take.wav", both)
    with pytest.raises(EmofuseError, match="unknown file type '.txt'"):
        predict._media_of("notes.txt", {"audio"})


def test_protocol_option_evaluates_that_protocol_only_and_prints_selected_last(easy, tmp_path, capsys):
    root, _ = easy
    shutil.copytree(root, tmp_path / "run")
    cache, reports = tmp_path / "run" / "cache", tmp_path / "run" / "reports"
    before = json.loads((reports / DATASET / "metrics.json").read_text())
    assert main(["evaluate", "--dataset", DATASET, "--method", "concat", "--classifier", "svm,knn",
                 "--protocol", "speaker", "--no-progress", "--cache-dir", str(cache),
                 "--reports-dir", str(reports)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert all(line.split()[0] == "speaker" for line in out[:7])  # 6 rows and the baseline, none of `random`
    assert out[-1].startswith("SELECTED  speaker (nested: inner speaker-grouped CV on training speakers): UA")
    after = json.loads((reports / DATASET / "metrics.json").read_text())
    assert [r for r in after["results"] if r["protocol"] == "random"] == [
        r for r in before["results"] if r["protocol"] == "random"]
    assert after["selected"] == before["selected"]  # same candidates, folds and store: reused
    with pytest.raises(EmofuseError, match=f"run `make fuse DATASET={DATASET} METHOD=concat PROTOCOL=loso`"):
        evaluate(DATASET, "concat", "knn", protocol="loso", cache_dir=cache, reports_dir=reports)
    with pytest.raises(EmofuseError, match="unknown protocol 'lopo'"):
        evaluate(DATASET, "concat", "knn", protocol="lopo", cache_dir=cache, reports_dir=reports)


class MeanOfFrames(ClassifierMixin, BaseEstimator):
    """A sequence classifier for tests: logistic regression on each sequence's mean frame."""

    def fit(self, X, y):
        self.model_ = LogisticRegression(max_iter=500).fit(self._means(X), y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(self._means(X))

    def predict_proba(self, X):
        return self.model_.predict_proba(self._means(X))

    @staticmethod
    def _means(X):
        return np.nan_to_num(np.array([np.nanmean(x, axis=0) for x in X]))


@pytest.mark.slow
def test_sequence_classifiers_are_labelled_with_what_they_read(easy, tmp_path, monkeypatch):
    """A sequence classifier ignores the fusion method: its rows say `frames` and appear once."""
    monkeypatch.setitem(CLASSIFIERS, "meanframes", ClassifierSpec(
        "meanframes", "mean frame + logistic regression", lambda random_state, blocks=None: MeanOfFrames(),
        input="sequence", light=False))
    root, _ = easy
    shutil.copytree(root, tmp_path / "run")
    cache, reports = tmp_path / "run" / "cache", tmp_path / "run" / "reports"
    shutil.copytree(cache / DATASET / "fused" / "concat", cache / DATASET / "fused" / "other")
    for method in ("concat", "other"):
        summary = evaluate(DATASET, method, "meanframes,knn", protocol="speaker", cache_dir=cache,
                           reports_dir=reports, progress=False)
    frames = [r for r in json.loads((reports / DATASET / "metrics.json").read_text())["results"]
              if r["classifier"] == "meanframes"]
    assert sorted((r["protocol"], r["modality"], r["method"]) for r in frames) == [
        ("speaker", m, "frames") for m in ("audio", "fused", "video")]
    assert all("fusion method is not used" in r["consumed"] for r in frames)
    text = (reports / DATASET / "report.md").read_text()
    assert "| fused | frames | meanframes |" in text and "| fused | other | meanframes |" not in text
    # named, the sequence classifier is a selection candidate once per modality, labelled `frames`
    candidates = summary["selected"]["speaker"]["candidates"]
    frames = [c for c in candidates if c["classifier"] == "meanframes"]
    assert sorted((c["modality"], c["method"]) for c in frames) == [(m, "frames") for m in ("audio", "fused", "video")]
    assert all("fusion method is not used" in c["consumed"] for c in frames)
    assert len(candidates) == len({json.dumps(c, sort_keys=True) for c in candidates}) == 6


def test_sequence_candidate_predicts_the_stored_clips_as_the_outer_fold_scored_them(easy, monkeypatch):
    """A `frames` candidate's model reads a new clip's streams and reproduces the evaluated predictions."""
    from classify import predict
    from classify.model import Candidate, SavedModel
    from classify.select import Corpus, fit_model, nested_selection

    monkeypatch.setitem(CLASSIFIERS, "meanframes", ClassifierSpec(
        "meanframes", "mean frame + logistic regression", lambda random_state, blocks=None: MeanOfFrames(),
        input="sequence", light=False))
    root, _ = easy
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        corpus = Corpus.from_store(store, ["fused"], frames={"fused"})
        folds = [f.to_dict() for f in make_folds(store.clips, "speaker")][:2]
    candidate = Candidate("fused", "frames", (), "meanframes")
    figure = nested_selection(corpus, folds, [candidate], progress=False)
    monkeypatch.setattr(predict, "clip_features", _fake_extract(root / "cache", []))
    for fold, scored in zip(folds, figure["folds"]):
        fitted = fit_model(corpus, candidate, rows=np.isin(corpus.ids, fold["train_ids"]))
        assert fitted.frame_families == {"mfcc": 2, "hog": 1} and fitted.modalities == ["audio", "video"]
        test = np.isin(corpus.ids, fold["test_ids"])
        table, _ = predict.predict_files(SavedModel(DATASET, {}, "h", {"none": fitted}),
                                         [f"/new/{c}.wav+/new/{c}.mp4" for c in corpus.ids[test]])
        again = fold_scores(corpus.labels[test], table["predicted"].to_numpy(str), figure["labels"])
        assert again["confusion"] == scored["confusion"] and again["ua"] == scored["ua"]


def test_speaker_overlapping_manifest_is_labelled_and_never_selected(tmp_path, capsys):
    cache = tmp_path / "cache"
    write_toy_store(cache, split=lambda take: "test" if take == 0 else "train")  # every speaker on both sides
    write_fused(cache, protocols=("manifest",))
    summary = evaluate(DATASET, "concat", "knn", cache_dir=cache, reports_dir=tmp_path / "reports", progress=False)
    assert summary["results"] and all(
        r["warning"].startswith("speaker-overlapping split (the corpus's own)") for r in summary["results"])
    assert summary["selected"] == {} and summary["model"] is None
    text = (tmp_path / "reports" / DATASET / "report.md").read_text()
    assert "**Warning: speaker-overlapping split (the corpus's own)" in text
    assert main(["evaluate", "--dataset", DATASET, "--method", "concat", "--classifier", "knn", "--no-progress",
                 "--cache-dir", str(cache), "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "[speaker-overlapping split (the corpus's own)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory):
    """The toy corpus fused without, with all-clips and with 2-clip enrolment adaptation, evaluated once."""
    root = tmp_path_factory.mktemp("adaptive")
    write_toy_store(root / "cache")
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        for mode in ("none", "all", "enrol:2"):
            fuse(store, "concat", speaker_norm=mode, out_root=root / "cache", progress=False)
    for mode in ("none", "enrol:2", "all"):  # each run selects among the methods of its own adaptation
        summary = evaluate(DATASET, "concat", "knn", speaker_norm=mode, cache_dir=root / "cache",
                           reports_dir=root / "reports", progress=False)
    return root, summary


@pytest.mark.slow
def test_adaptive_results_are_labelled_and_selected_apart(adaptive):
    root, summary = adaptive
    assert {r["method"] for r in summary["results"]} == {"concat-snorm", BASELINE_METHOD}
    assert summary["selected"] == {} and set(summary["selected_adaptive"]["speaker"]) == {"all"}
    assert all(r["adaptation"] == ADAPTIVE_LABEL for r in summary["results"] if r["method"] == "concat-snorm")
    assert "adaptation" not in next(r for r in summary["results"] if r["method"] == BASELINE_METHOD)
    metrics = json.loads((root / "reports" / DATASET / "metrics.json").read_text())
    assert "adaptation" not in metrics["selected"]["speaker"]
    assert {c["method"] for c in metrics["selected"]["speaker"]["candidates"]} == {"concat"}
    by_mode = metrics["selected_adaptive"]["speaker"]
    assert set(by_mode) == {"all", "enrol:2"}
    for mode, figure in by_mode.items():
        assert figure["adaptation"] == ADAPTIVE_LABEL and figure["speaker_norm"] == mode
        assert {c["speaker_norm"] for c in figure["candidates"]} == {mode}
    # enrolment clips are not scored: 2 per test speaker fewer than with all clips
    for every, enrol in zip(by_mode["all"]["folds"], by_mode["enrol:2"]["folds"]):
        assert enrol["n_test"] == every["n_test"] - 2 * len(every["test_speakers"])
    text = (root / "reports" / DATASET / "report.md").read_text()
    assert f"| fused | concat-snorm ({ADAPTIVE_LABEL}) | knn |" in text
    assert "## Speaker adaptation under `speaker`: UA (%) against the enrolment size" in text
    assert "| modality | fusion method | classifier | none | K = 2 | all clips |" in text  # "none" once
    assert f"| speaker | {ADAPTIVE_LABEL}: 2 enrolment clips | **" in text


@pytest.mark.slow
def test_adaptive_model_predicts_with_enrolment_clips(adaptive, tmp_path, monkeypatch):
    """With --enrol the adaptive variant normalises with the enrolment clips' statistics: for a stored
    speaker enrolled with all of its clips, exactly the normalised row it was trained on."""
    predict = pytest.importorskip("classify.predict")
    root, summary = adaptive
    model = predict.load_model(root / "reports" / DATASET / "model.joblib")
    fitted = model.variants["adaptive"]
    assert fitted.adaptive and summary["best"]["adaptive"]["chosen"]["speaker_norm"] == "all"
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        X, _, blocks = modality_matrix(store, fitted.candidate.modality)
        clips = store.clips
    y, speakers = clips["label"].to_numpy(str), clips["speaker"].to_numpy(str)
    Z = speaker_zscore(X, speakers)
    fusion = build_pipeline(fitted.candidate.method, blocks).fit(Z, y, groups=speakers)
    inputs = fusion.transform(Z).astype(np.float32)
    expected = make_classifier(fitted.candidate.classifier).fit(inputs, y).predict_proba(inputs)

    monkeypatch.setattr(predict, "clip_features", _fake_extract(root / "cache", []))
    suffix = ".wav" if predict.needed_modalities(fitted) == {"audio"} else ".mp4"
    enrol_dir = tmp_path / "speaker-02"
    enrol_dir.mkdir()
    for clip_id in clips["clip_id"][speakers == "02"]:
        (enrol_dir / f"{clip_id}{suffix}").touch()
    wanted = clips[speakers == "02"].head(5)
    files = [f"/new/{c}{suffix}" for c in wanted["clip_id"]]
    table, note = predict.predict_files(model, files, enrol=[enrol_dir])
    assert note is None
    np.testing.assert_allclose(table[fitted.labels].to_numpy(), expected[wanted.index], rtol=1e-5, atol=1e-7)
    # without enrolment clips: the non-adaptive variant, and it says so
    table, note = predict.predict_files(model, files)
    assert "no --enrol clips: using the non-adaptive model" in note
    plain = model.variants["none"]
    with FeatureStore.open(store_path(DATASET, root / "cache")) as store:
        X_plain = modality_matrix(store, plain.candidate.modality)[0]
    np.testing.assert_allclose(table[plain.labels].to_numpy(), plain.predict_proba(X_plain[wanted.index]), rtol=1e-6)
    with pytest.raises(EmofuseError, match="no audio or video files among the enrolment clips"):
        predict.predict_files(model, files, enrol=[tmp_path])


@pytest.mark.slow
def test_text_stip_words_and_selection_through_evaluate(tmp_path, caplog):
    """Audio, video (STIP words) and text: text rows, fused over all three, STIP candidates in the
    selection (no longer left out) and the codebook inside model.joblib when its model reads video."""
    from test_fusion_run import clip_table, make_store

    predict = pytest.importorskip("classify.predict")
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    with FeatureStore.open(make_store(cache, clips=clip_table(n_speakers=4), stip_points=True, text=True)) as store:
        fuse(store, "concat", protocol="speaker", out_root=cache, stip_bow=4, progress=False)
    with caplog.at_level("INFO"):
        summary = evaluate("toy", "concat", "logreg", protocol="speaker", cache_dir=cache, reports_dir=reports,
                           progress=False)
    assert {r["modality"] for r in summary["results"]} == {"audio", "video", "text", "fused"}
    assert "leaves out" not in caplog.text
    candidates = summary["selected"]["speaker"]["candidates"]
    assert {(c["modality"], c.get("stip_bow", 0)) for c in candidates} == {
        ("audio", 0), ("video", 4), ("text", 0), ("fused", 4)}
    fitted = predict.load_model(reports / "toy" / "model.joblib").variants["none"]
    assert (fitted.stip_words is not None) == ("video" in fitted.modalities)
    assert "| text | concat | logreg |" in (reports / "toy" / "report.md").read_text()


def test_text_only_manifest_through_evaluate_and_predict(tmp_path, capsys, monkeypatch):
    """A text-only store (as MELD's manifest gives): the manifest split is labelled speaker-overlapping;
    under speaker folds the text model is saved and predicts from transcripts alone."""
    from test_fusion_run import clip_table, features_of

    predict = pytest.importorskip("classify.predict")
    clips = clip_table().assign(split=lambda t: np.where(t["clip_id"].str.endswith("-0"), "test", "train"))
    made, _ = features_of(clips, video=False, text=True)
    text = made["text"][1].copy()
    text[np.arange(len(clips)), clips["label"].map(EMOTIONS.index).to_numpy()] += 3.0  # text carries the class
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    write_store(store_path("toy", cache), dataset="toy", config={"text": {}}, config_hash="t", versions={},
                clips=clips, functionals={"text": ("text", text, made["text"][2])}, sequences={},
                failures=pd.DataFrame([], columns=FAILURE_COLUMNS))
    with FeatureStore.open(store_path("toy", cache)) as store:
        for protocol in ("manifest", "speaker"):
            fuse(store, "concat", protocol=protocol, out_root=cache, progress=False)
    assert main(["evaluate", "--dataset", "toy", "--method", "concat", "--classifier", "logreg", "--protocol",
                 "manifest", "--no-progress", "--cache-dir", str(cache), "--reports-dir", str(reports)]) == 0
    assert "[speaker-overlapping split (the corpus's own)" in capsys.readouterr().out
    metrics = json.loads((reports / "toy" / "metrics.json").read_text())
    assert {(r["modality"], r["method"]) for r in metrics["results"]} == {("text", "concat")}
    assert metrics["results"][0]["ua"] > 0.8 and not metrics.get("selected")
    summary = evaluate("toy", "concat", "logreg", protocol="speaker", cache_dir=cache, reports_dir=reports,
                       progress=False)
    model = predict.load_model(summary["model"])
    fitted = model.variants["none"]
    assert fitted.modalities == ["text"] and predict.needed_modalities(fitted) == {"text"}
    monkeypatch.setattr(predict, "clip_features", _fake_extract(cache, [], dataset="toy"))
    wanted = clips.groupby("label").head(1)
    table, _ = predict.predict_files(model, texts=list(wanted["clip_id"]))
    np.testing.assert_allclose(table[fitted.labels].to_numpy(), fitted.predict_proba(text[wanted.index]), rtol=1e-6)
    assert list(table["predicted"]) == list(wanted["label"])
    with pytest.raises(EmofuseError, match="give the files to classify"):
        predict.predict_files(model)


@pytest.mark.parametrize("method, fusion", [
    ("concat", {}),
    ("mfa", {"mfa__pca": 4, "mfa__k1": 3, "mfa__n_components": None, "mfa__append": False, "mfa__per_block": False}),
    ("concat", {"speaker_norm": "enrol:2"}),
    ("concat", {"stip_bow": 4}),
])
def test_selection_reads_the_tables_outer_fits_as_a_refit_would_score_them(tmp_path, monkeypatch, method, fusion):
    """The outer scores selection takes from the evaluation table equal its own refits, on plain,
    MFA, enrolment-adapted and STIP bag-of-words folds; the refits happen only without the table."""
    from classify import select
    from test_fusion_run import clip_table, make_store

    cache = tmp_path / "cache"
    with FeatureStore.open(make_store(cache, clips=clip_table(n_speakers=4), stip_points=True)) as store:
        fuse(store, "concat", protocol="speaker", out_root=cache, progress=False)  # a second method to choose
        fuse(store, method, protocol="speaker", out_root=cache, progress=False, **fusion)
    method_dir = next((p.name for p in (cache / "toy" / "fused").iterdir() if p.name != "concat"), "concat")
    refits = {True: [], False: []}
    original = select._outer_score
    norm = fusion.get("speaker_norm", "none")
    summaries = {}
    for reuse in (True, False):
        monkeypatch.setattr(select, "_outer_score", lambda *args: refits[reuse].append(args[1]) or original(*args))
        if not reuse:
            monkeypatch.setattr(evaluate_module, "table_scores", lambda *args: {})
        summaries[reuse] = evaluate("toy", method_dir, "logreg,knn", protocol="speaker", cache_dir=cache,
                                    reports_dir=tmp_path / f"reports-{reuse}", progress=False)
    figures = {reuse: summary["selected"]["speaker"] if norm == "none" else
               summary["selected_adaptive"]["speaker"][norm] for reuse, summary in summaries.items()}
    assert figures[True] == figures[False]
    assert len(refits[False]) == figures[False]["n_folds"]  # every outer fold refitted without the table
    assert all(c.method_dir != method_dir or c.stip_bow != fusion.get("stip_bow", 0) for c in refits[True])
