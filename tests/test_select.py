"""Nested selection and speaker adaptation: what is chosen, from which clips, and how clips are normalised."""

import json

import joblib
import numpy as np
import pytest

from classify import select
from classify.model import Candidate
from classify.select import Corpus, nested_selection
from extract.errors import EmofuseError
from fusion.methods import SpeakerPipeline
from fusion.speaker_norm import (ADAPTIVE_LABEL, adapt, enrolment_mask, method_dir_name, parse_method_dir,
                                 parse_speaker_norm, speaker_statistics)

EMOTIONS = ["angry", "calm", "happy", "sad"]


def make_corpus(n_speakers=6, per_class=5, seed=0):
    """Audio columns 0-3 carry the class (one-hot, plus a speaker offset); video is noise."""
    rng = np.random.default_rng(seed)
    rows = [(s, e, r) for s in range(n_speakers) for e in range(len(EMOTIONS)) for r in range(per_class)]
    speakers = np.array([f"s{s}" for s, _, _ in rows])
    codes = np.array([e for _, e, _ in rows])
    audio = rng.normal(size=(len(rows), 6)) + np.array([s for s, _, _ in rows])[:, None]
    audio[np.arange(len(rows)), codes] += 3.0
    video = rng.normal(size=(len(rows), 5))
    fused = np.hstack([audio, video])
    inputs = {"audio": (audio, [f"a{i}" for i in range(6)], [["audio", 6]]),
              "video": (video, [f"v{i}" for i in range(5)], [["video", 5]]),
              "fused": (fused, [f"a{i}" for i in range(6)] + [f"v{i}" for i in range(5)],
                        [["audio", 6], ["video", 5]])}
    ids = np.array([f"s{s}-{e}-{r}" for s, e, r in rows])
    return Corpus(ids, np.array(EMOTIONS)[codes], speakers, inputs)


def loso(corpus):
    return [{"fold": k, "train_ids": corpus.ids[corpus.speakers != s].tolist(),
             "test_ids": corpus.ids[corpus.speakers == s].tolist()}
            for k, s in enumerate(sorted(set(corpus.speakers.tolist())))]


def candidates(modalities=("audio", "video"), classifiers=("logreg", "knn"), method="concat"):
    return [Candidate(m, method, (), c) for m in modalities for c in classifiers]


def test_selection_chooses_the_informative_modality_inside_training_speakers():
    corpus = make_corpus()
    folds = loso(corpus)[:3]
    figure = nested_selection(corpus, folds, candidates(), progress=False)
    assert [c["modality"] for c in figure["chosen"]] == ["audio"] * 3
    assert figure["ua"] > 0.8 and figure["n_folds"] == 3 and figure["how"] == select.HOW
    assert [f["test_speakers"] for f in figure["folds"]] == [["s0"], ["s1"], ["s2"]]
    assert figure["n_inner_folds"] == [4, 4, 4]  # min(4, 5 training speakers)
    assert len(figure["candidates"]) == 4


def test_test_speakers_do_not_influence_the_choice():
    """Shuffling the test speaker's labels and replacing its features changes its score, never the choice."""
    corpus = make_corpus()
    fold = loso(corpus)[0]
    honest = nested_selection(corpus, [fold], candidates(), progress=False)
    test = corpus.speakers == "s0"
    rng = np.random.default_rng(5)
    tampered_inputs = {m: (np.where(test[:, None], rng.normal(size=X.shape), X), n, b)
                       for m, (X, n, b) in corpus.inputs.items()}
    labels = corpus.labels.copy()
    labels[test] = rng.permutation(labels[test])[::-1]
    tampered = Corpus(corpus.ids, labels, corpus.speakers, tampered_inputs)
    other = nested_selection(tampered, [fold], candidates(), progress=False)
    assert other["chosen"] == honest["chosen"]
    assert other["folds"][0]["ua"] != honest["folds"][0]["ua"]


def test_fusion_is_refitted_once_per_inner_training_side_on_inner_training_clips(monkeypatch):
    """Supervised fusion (MFA) is fitted on inner-training clips only, once per distinct inner
    training side for all classifiers and outer folds."""
    corpus = make_corpus()
    folds = loso(corpus)[:2]
    fitted_on = []
    original = SpeakerPipeline.fit

    def recording_fit(self, X, y=None, groups=None):
        fitted_on.append(frozenset(groups.tolist()))
        return original(self, X, y, groups)

    monkeypatch.setattr(SpeakerPipeline, "fit", recording_fit)
    nested_selection(corpus, folds, candidates(("audio",), ("logreg", "knn", "svm"), method="mfa"), progress=False)
    inner = [[frozenset(corpus.speakers[train].tolist()) for train, _ in select.inner_splits(corpus.speakers, side)]
             for side in (corpus.speakers != "s0", corpus.speakers != "s1")]
    assert [len(sides) for sides in inner] == [4, 4]  # min(4, 5 training speakers)
    assert set(inner[0]) & set(inner[1]) == {frozenset({"s2", "s3", "s4"})}
    # 4 + 4 inner splits, one training side shared by both folds, then each fold's refit
    assert len(fitted_on) == 7 + 2
    assert sorted(fitted_on[:7], key=sorted) == sorted(set(inner[0]) | set(inner[1]), key=sorted)
    assert all(f"s{k}" not in speakers for k, speakers in zip((0, 1), fitted_on[7:]))


@pytest.mark.parametrize("speaker_norm", ["none", "enrol:2"])
def test_shared_inner_fits_score_each_fold_as_if_it_were_alone(speaker_norm):
    """Folds whose inner splits train on the same clips share one fit; every inner and outer
    figure is what the fold gives on its own."""
    corpus = make_corpus()
    folds = loso(corpus)[:3]
    compared = [Candidate(m, "concat", (), c, speaker_norm=speaker_norm)
                for m in ("audio", "fused") for c in ("logreg", "knn", "rf")]
    together = nested_selection(corpus, folds, compared, progress=False)
    alone = [nested_selection(corpus, [fold], compared, progress=False) for fold in folds]
    assert together["chosen"] == [a["chosen"][0] for a in alone]
    assert together["folds"] == [a["folds"][0] for a in alone]
    assert len(set(c["inner_ua"] for c in together["chosen"])) > 1


def test_the_model_reads_the_inner_scores_selection_measured_on_the_way(monkeypatch):
    """Inner splits over all speakers that a selection fit trains on are scored by that fit:
    the model's choice and inner UA are the same, with fewer fits."""
    corpus = make_corpus()
    compared = candidates(("audio", "fused"), ("logreg", "knn"))
    fits = []
    original = select._inner_split_scores

    def counting(*args):
        fits.append(args[1])
        return original(*args)

    monkeypatch.setattr(select, "_inner_split_scores", counting)
    _, alone = select.select_model(corpus, compared, progress=False)
    n_alone = len(fits)
    ahead = {}
    nested_selection(corpus, loso(corpus), compared, ahead=ahead, progress=False)
    fits.clear()
    _, read = select.select_model(corpus, compared, ahead=ahead, progress=False)
    assert n_alone == 2 * 4 and ahead and len(fits) == n_alone - len(ahead)
    assert read == alone and alone["chosen"]["modality"] == "audio"


def test_selection_needs_two_training_speakers():
    corpus = make_corpus(n_speakers=2)
    with pytest.raises(EmofuseError, match="at least 2 training speakers, got 1"):
        nested_selection(corpus, loso(corpus), candidates(), progress=False)


def test_speaker_norm_modes_and_directory_names():
    assert [parse_speaker_norm(v) for v in (None, False, "none", True, "all", "enrol:08")] == [
        "none", "none", "none", "all", "all", "enrol:8"]
    for bad in ("enrol:0", "enrol", "some"):
        with pytest.raises(EmofuseError, match="unknown speaker normalisation"):
            parse_speaker_norm(bad)
    for mode, name in (("none", "mfa"), ("all", "mfa-snorm"), ("enrol:16", "mfa-enrol16")):
        assert method_dir_name("mfa", mode) == name and parse_method_dir(name) == ("mfa", mode)
    assert parse_method_dir("zebra+mfa-enrol4") == ("zebra+mfa", "enrol:4")


def test_enrolment_clips_are_drawn_per_speaker_without_labels():
    corpus = make_corpus()
    mask = enrolment_mask(corpus.ids, corpus.speakers, 3, seed=1)
    for speaker in set(corpus.speakers.tolist()):
        assert mask[corpus.speakers == speaker].sum() == 3
    # the same clips whatever the row order (and no label is read)
    order = np.random.default_rng(0).permutation(len(corpus.ids))
    again = enrolment_mask(corpus.ids[order], corpus.speakers[order], 3, seed=1)
    assert set(corpus.ids[order][again]) == set(corpus.ids[mask])
    assert set(corpus.ids[enrolment_mask(corpus.ids, corpus.speakers, 3, seed=2)]) != set(corpus.ids[mask])
    with pytest.raises(EmofuseError, match="speaker s0 has 20 clip"):
        enrolment_mask(corpus.ids, corpus.speakers, 20)


def test_adapt_normalises_test_speakers_with_their_enrolment_clips():
    corpus = make_corpus()
    X = corpus.inputs["audio"][0]
    train, test = corpus.speakers != "s0", corpus.speakers == "s0"
    Z, scored = adapt(X, corpus.ids, corpus.speakers, train, test, "enrol:4", seed=0)
    enrol = test & ~scored
    assert enrol.sum() == 4 and (scored == test & ~enrol).all()
    mean, scale = speaker_statistics(X[enrol])
    np.testing.assert_allclose(Z[test], (X[test] - mean) / scale, rtol=1e-5, atol=1e-5)
    s1 = corpus.speakers == "s1"  # a training speaker: its own clips
    np.testing.assert_allclose(Z[s1].mean(axis=0), 0, atol=1e-5)
    Z_all, scored_all = adapt(X, corpus.ids, corpus.speakers, train, test, "all")
    assert (scored_all == test).all()
    np.testing.assert_allclose(Z_all[test].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_array_equal(Z_all[train], Z[train])
    same, scored_none = adapt(X, corpus.ids, corpus.speakers, train, test, "none")
    assert same is X and scored_none is test


def test_adaptive_candidates_are_labelled():
    described = Candidate("audio", "concat", (("pca", 4),), "svm", "enrol:8").describe()
    assert described["method"] == "concat-enrol8" and described["adaptation"] == ADAPTIVE_LABEL
    assert Candidate.from_description(described) == Candidate("audio", "concat", (("pca", 4),), "svm", "enrol:8")
    assert "adaptation" not in Candidate("audio", "concat", (), "svm").describe()


def test_stip_codebook_is_refitted_on_training_clips_and_predict_reproduces_the_evaluation(tmp_path, monkeypatch):
    """A STIP bag-of-words candidate fits its codebook on the training side (the one fusion fitted
    for that fold), and the model predicts the stored test clips exactly as the outer fold scored them."""
    from test_evaluate import _fake_extract
    from test_fusion_run import make_store

    from classify import predict
    from classify.metrics import fold_scores
    from classify.model import SavedModel
    from classify.select import fit_model
    from features.store import FeatureStore
    from fusion.run import fuse

    cache = tmp_path / "cache"
    with FeatureStore.open(make_store(cache, stip_points=True)) as store:
        out = fuse(store, "concat", protocol="speaker", out_root=cache, stip_bow=4, progress=False)
        corpus = Corpus.from_store(store, ["video"], stip_bow=True)
    folds = json.loads((out / "folds.json").read_text())["folds"][:2]
    candidate = Candidate("video", "concat", (), "logreg", stip_bow=4)
    figure = nested_selection(corpus, folds, [candidate], progress=False)
    assert figure["chosen"][0]["stip_bow"] == 4
    monkeypatch.setattr(predict, "clip_features", _fake_extract(cache, [], dataset="toy"))
    for fold, scored in zip(folds, figure["folds"]):
        fitted = fit_model(corpus, candidate, rows=np.isin(corpus.ids, fold["train_ids"]))
        saved = joblib.load(out / "video" / f"fold-{fold['fold']}.stip_bow.joblib")
        np.testing.assert_array_equal(fitted.stip_words.codebook_, saved.codebook_)
        assert "stip_0" not in fitted.input_names and fitted.modalities == ["video"]
        test = np.isin(corpus.ids, fold["test_ids"]) & corpus.present("video")
        table, _ = predict.predict_files(SavedModel("toy", {}, "cafe", {"none": fitted}),
                                         [f"/new/{c}.mp4" for c in corpus.ids[test]])
        again = fold_scores(corpus.labels[test], table["predicted"].to_numpy(str), figure["labels"])
        assert again["confusion"] == scored["confusion"] and again["ua"] == scored["ua"]


def test_stip_candidates_need_video():
    corpus = make_corpus()
    with pytest.raises(EmofuseError, match="STIP bag of words needs video"):
        corpus.fusion_input(Candidate("audio", "concat", (), "logreg", stip_bow=4).fusion_key, corpus.present("audio"))


def test_a_model_of_an_older_format_is_refused(tmp_path):
    from classify.model import SavedModel
    from classify.predict import load_model

    model = SavedModel("toy", {}, "h", {})
    joblib.dump(model, tmp_path / "model.joblib")
    assert load_model(tmp_path / "model.joblib").current
    del model.format  # as a model.joblib written before the format was recorded unpickles
    joblib.dump(model, tmp_path / "model.joblib")
    with pytest.raises(EmofuseError, match="not an emofuse model of this version"):
        load_model(tmp_path / "model.joblib")
    # a pickle naming a class where it no longer is (the STIP codebook before format 3)
    (tmp_path / "model.joblib").write_bytes(b"cfeatures.stip\nStipBagOfWords\n.")
    with pytest.raises(EmofuseError, match="not an emofuse model of this version"):
        load_model(tmp_path / "model.joblib")


def test_a_calibrated_svm_predicts_the_labels_the_plain_svm_was_scored_with():
    """model.joblib calibrates an SVM for probabilities; its labels stay the plain SVM's."""
    from sklearn.preprocessing import FunctionTransformer

    from classify.model import FittedModel, fit_classifier

    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["a", "b", "c"]), 40)
    Z = rng.normal(size=(120, 5)) + 0.8 * (y[:, None] == np.array(["a", "b", "c", "a", "b"]))
    speakers = np.tile(np.arange(6), 20).astype(str)
    plain = fit_classifier("svm", Z, y, speakers)
    calibrated = fit_classifier("svm", Z, y, speakers, probabilities=True)
    model = FittedModel(Candidate("audio", "concat", (), "svm"), [f"x{j}" for j in range(5)], [["audio", 5]],
                        FunctionTransformer().fit(Z), calibrated, ["a", "b", "c"], len(Z))
    probe = rng.normal(size=(400, 5)) * 1.5
    assert (model.predict(probe) == plain.predict(probe)).all()
    ranked = np.array(["a", "b", "c"])[model.predict_proba(probe).argmax(axis=1)]
    assert (ranked != plain.predict(probe)).any()  # what the probabilities alone would have said
