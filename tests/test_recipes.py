"""Published systems as recipes, end to end on a tiny synthetic audio-visual corpus."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from classify import recipes
from classify.__main__ import main as classify_main
from classify.tuning import take_rows
from extract.errors import EmofuseError
from extract.synthetic import generate_corpus
from features.functionals import functionals
from features.images import store_images
from features.runner import default_config, run_features
from features.store import FeatureStore, store_path

EMOTIONS = ("03", "04", "05")  # happy, sad, angry: 8 takes each per actor


def fast(recipe):
    """The recipe with a few epochs and iterations, so the tests take seconds."""
    def quick(name, params):
        if name == "omsn-mgo":  # the smallest MGO budget: a herd of 3, one iteration
            return params | {"estimator__max_epochs": 1, "max_evaluations": 15, "population": 3}
        return params | {"max_epochs": 1 if name.startswith(("omsn", "mm_emor")) else 2}

    changes = {"classifiers": tuple((name, quick(name, params)) for name, params in recipe.classifiers)}
    if recipe.audio_encoder:
        changes["audio_encoder"] = recipe.audio_encoder | {"params": recipe.audio_encoder["params"] | {"max_epochs": 1}}
    if "zebra" in recipe.method:
        changes["fusion_params"] = {"zebra__budget": 24, "zebra__n_zebras": 6}
    return dataclasses.replace(recipe, **changes)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two synthetic actors, three emotions (48 clips, audio and video)."""
    folder = generate_corpus(tmp_path_factory.mktemp("corpus"), actors=2, seed=0, n_jobs=2, progress=False)
    for path in folder.glob("Actor_*/*"):
        if path.name.split("-")[2] not in EMOTIONS:
            path.unlink()
    return folder


@pytest.fixture(scope="module")
def ran(corpus, tmp_path_factory):
    """Every recipe run by `recipes --run` over a main store that has the families of all."""
    root = tmp_path_factory.mktemp("run")
    cache, reports = root / "cache", root / "reports"
    families = [f for recipe in recipes.RECIPES.values() for f in recipe.all_families()]
    run_features("synthetic", corpus, jobs=2, cache_dir=cache, config=default_config(families), progress=False)
    main_before = store_path("synthetic", cache).stat().st_mtime_ns
    patched = {name: fast(recipe) for name, recipe in recipes.RECIPES.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recipes, "RECIPES", patched)
        summary = recipes.run_all("synthetic", data_dir=corpus, cache_dir=cache, reports_dir=reports)
    return summary, cache, reports, main_before


@pytest.mark.slow
def test_every_recipe_runs_every_protocol_on_both_branches(ran):
    summary, cache, reports, _ = ran
    assert summary["skipped"] == {}
    document = json.loads((reports / "synthetic" / "recipes.json").read_text())
    found = {(e["recipe"], e["classifier"], e["protocol"]) for e in document["results"]}
    three = ("random", "speaker", "loso")
    assert found == {("dv-emotionnet", "cnn1d", p) for p in ("random", "segments", "speaker", "loso")} | {
        ("kirar-bilstm-sa", c, p) for c in ("bilstm_sa_features", "bilstm_features", "cnn1d") for p in three} | {
        ("omsn-er", "omsn-mgo", "random")} | {
        ("omsn-er", "omsn", p) for p in three} | {
        ("mm-emor", c, p) for c in ("mm_emor", "mm_emor_image", "mm_emor_text") for p in three} | {
        ("mamieva-attention", "mamieva", p) for p in three}
    for entry in document["results"]:
        modalities = ["audio", "text"] if entry["recipe"] == "mm-emor" else ["audio", "video"]
        assert entry["modalities"] == modalities and entry["branch"] == "fused"
        assert 0 <= entry["accuracy"] <= 1 and entry["n_parameters"] > 0 and entry["wall_s"] > 0
        assert sum(map(sum, entry["confusion"])) == entry["n_rows"] if entry["protocol"] in ("speaker", "loso") \
            else sum(map(sum, entry["confusion"])) < entry["n_rows"]
        assert entry["labels"] == ["angry", "happy", "sad"]
    pieces = next(e for e in document["results"] if e["protocol"] == "segments")
    whole = next(e for e in document["results"] if e["recipe"] == "dv-emotionnet" and e["protocol"] == "speaker")
    assert pieces["n_rows"] == 3 * whole["n_rows"] == 3 * 48
    assert "warning" in pieces and "warning" not in whole
    # Kirar's network sees the zebra-selected features, fewer than its 32 + 1764 inputs.
    kirar = next(e for e in document["results"] if e["classifier"] == "bilstm_sa_features")
    assert 1 <= kirar["feature_width"] < 32 + 1764
    for entry in document["results"]:
        k = len(entry["labels"])
        for fold in entry["folds"]:  # the one-vs-rest reading of every fold's accuracy
            assert fold["ovr_accuracy"] == pytest.approx(1 - 2 * (1 - fold["accuracy"]) / k)
        if entry["inputs"] != "functionals":
            assert entry["feature_width"] is None
    # MGO's learning rate, chosen per outer fold inside its training speakers, is written down.
    for entry in (e for e in document["results"] if e["classifier"] == "omsn-mgo"):
        assert all(1e-4 <= fold["chosen"]["learning_rate"] <= 1e-2 for fold in entry["folds"])
    omsn = {e["classifier"]: e for e in document["results"] if e["recipe"] == "omsn-er" and e["protocol"] == "loso"}
    mm = {e["classifier"]: e["n_parameters"] for e in document["results"]
          if e["recipe"] == "mm-emor" and e["protocol"] == "loso"}
    assert omsn["omsn"]["n_parameters"] > 100_000  # two BiLSTMs (one over 1764 HOG values a frame)
    assert mm["mm_emor"] == mm["mm_emor_image"] + 384 * 128 > mm["mm_emor_text"]


@pytest.mark.slow
def test_report_reads_its_figures_from_recipes_json(ran):
    _, _, reports, _ = ran
    document = json.loads((reports / "synthetic" / "recipes.json").read_text())
    text = (reports / "synthetic" / "recipes.md").read_text()
    for entry in document["results"]:
        assert f"{100 * entry['accuracy']:.1f}" in text and f"UA {100 * entry['ua']:.1f}" in text
    assert "94.36 (RAVDESS fused" in text and "89.83 (MELD fused" in text
    assert "96.33 (RAVDESS fused; printed as 99.08;" in text and "77.06 (IEMOCAP fused" in text
    for entry in (e for e in document["results"] if e["recipe"] == "omsn-er"):
        assert f"one-vs-rest {100 * entry['ovr_accuracy']:.1f})" in text
    assert "Chosen inside the training speakers, omsn-mgo, paper's protocol (random 80/20 of clips), per fold: " \
        "learning_rate" in text
    for figure in re.findall(r"\]\((figures/[^)]+\.png)\)", text):
        assert (reports / "synthetic" / figure).stat().st_size > 1000
    assert len(re.findall(r"!\[confusion", text)) == 5


@pytest.mark.slow
def test_mamieva_reads_mfcc_maps_waveforms_and_face_crops(ran):
    summary, cache, _, _ = ran
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        inputs = recipes.load_inputs(recipes.MAMIEVA_ATTENTION, store)
        mfcc, waveform, faces = inputs.X[0]
        clip_id = inputs.clips["clip_id"][0]
        stream = store.sequence(clip_id, "mfcc")
        np.testing.assert_array_equal(mfcc, stream.values[:, :40])
        assert waveform.shape == (len(store.sequence(clip_id, "waveform").values),) and faces.shape == (8, 32, 32)
        assert abs(len(waveform) / 8000 - len(mfcc) / 100) < 0.05  # 8 kHz signal, 10 ms frames: one duration
        assert inputs.modalities == ["audio", "video"] and len(inputs.X) == 48
    entries = [e for e in summary["results"] if e["recipe"] == "mamieva-attention"]
    assert all(0 <= e["wa_mamieva"] <= 1 and e["feature_width"] is None for e in entries)


@pytest.mark.slow
def test_main_store_is_reused_when_it_has_the_families_and_never_rewritten(ran):
    _, cache, _, main_before = ran
    assert store_path("synthetic", cache).stat().st_mtime_ns == main_before  # nothing new to add
    assert not (cache / "synthetic" / "recipes").exists()


@pytest.mark.slow
def test_segment_pieces_are_functionals_of_slices(ran):
    _, cache, _, _ = ran
    recipe = recipes.DV_EMOTIONNET
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        inputs = recipes.load_inputs(recipe, store)
        assert inputs.X.blocks["audio"][0].shape == (48, 45)
        pieces = recipes.segment_inputs(recipe, store, inputs)
        clip_id = inputs.clips["clip_id"][0]
        stream = store.sequence(clip_id, "mfcc")
        edges = np.linspace(0, len(stream.values), 4).round().astype(int)
        values, names = functionals(dataclasses.replace(stream, values=stream.values[edges[1]:edges[2]]))
    row = list(pieces.clips["clip_id"]).index(f"{clip_id}#1")
    column = pieces.X.blocks["audio"][1].index("mfcc_3_mean")
    assert pieces.X.blocks["audio"][0][row, column] == pytest.approx(values[names.index("mfcc_3_mean")], rel=1e-5)
    assert pieces.clips["speaker"][row] == inputs.clips["speaker"][0]


@pytest.mark.slow
def test_audio_only_corpus_runs_the_audio_branch_and_says_so(corpus, tmp_path):
    audio_only = tmp_path / "audio"
    for path in corpus.glob("Actor_*/03-*.wav"):
        (audio_only / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, audio_only / path.parent.name / path.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recipes, "RECIPES", {"dv-emotionnet": fast(recipes.DV_EMOTIONNET)})
        summary = recipes.run_recipe("dv-emotionnet", "synthetic", data_dir=audio_only, cache_dir=tmp_path / "cache",
                                     reports_dir=tmp_path / "reports", protocols=("speaker",))
    (entry,) = summary["results"]
    assert entry["branch"] == "audio" and entry["modalities"] == ["audio"]
    # No main store: DV-EmotionNet's families were extracted into a store of their own.
    (own,) = (tmp_path / "cache" / "synthetic" / "recipes").glob("*/synthetic/features.h5")
    assert entry["store"] == str(own) and not store_path("synthetic", tmp_path / "cache").exists()
    with FeatureStore.open(own) as store:
        assert {"energy", "zcr", "mfcc", "pitch_acf"} <= set(store.families())
    text = summary["report"].read_text()
    assert "video branch not run" in text
    assert "94.66 (RAVDESS audio" in text


def test_recipes_are_listed_and_unknown_names_refused(capsys):
    assert classify_main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in recipes.RECIPES)
    assert classify_main(["recipe", "nope", "--dataset", "synthetic"]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    with pytest.raises(EmofuseError, match="protocol"):
        recipes.run_recipe("dv-emotionnet", "synthetic", protocols=("kfold",))


def test_config_coverage_and_claim_choice():
    kirar, dv = recipes.KIRAR_BILSTM_SA, recipes.DV_EMOTIONNET
    assert recipes._config_covers(default_config(), kirar)
    assert not recipes._config_covers(default_config(), dv)  # pitch_acf is opt-in
    changed = default_config(dv.all_families())
    assert recipes._config_covers(changed, dv)
    changed["audio"]["n_mfcc"] = 20
    assert not recipes._config_covers(changed, dv)
    assert recipes.paper_claim(dv, "cnn1d", "audio", "cremad").accuracy == 0.7945
    assert recipes.paper_claim(dv, "cnn1d", "fused", "synthetic").accuracy == 0.9436
    assert recipes.paper_claim(kirar, "bilstm_features", "audio", "ravdess").accuracy == 0.85151
    assert recipes.paper_claim(kirar, "svm", "fused", "meld") is None


@pytest.mark.slow
def test_sequence_inputs_hold_each_clips_own_frames(ran):
    _, cache, _, _ = ran
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        inputs = recipes.load_inputs(recipes.OMSN_ER, store)
        row = 7
        clip_id = inputs.clips["clip_id"][row]
        audio, video = inputs.X[row]
        mfcc, spectral = store.sequence(clip_id, "mfcc"), store.sequence(clip_id, "spectral")
        hog = store.sequence(clip_id, "hog").values
    assert len(inputs.X) == len(inputs.clips) == 48 and inputs.modalities == ["audio", "video"]
    # 40 static MFCCs (no deltas), energy 2, zcr 1, pitch 2, spectral 5, envelope 1, mcr 1
    assert audio.shape == (len(mfcc.values), 52) and video.shape == hog.shape == (len(hog), 1764)
    np.testing.assert_array_equal(audio[:, :40], mfcc.values[:, :40])
    np.testing.assert_array_equal(audio[:, 45:50], spectral.values)  # after mfcc, energy, zcr, pitch
    np.testing.assert_array_equal(video, hog)
    # Nothing fitted outside the classifier: a fold is the rows themselves.
    train = np.arange(48) % 4 != 0
    X_train, X_test, fitted = recipes.split_rows(recipes.OMSN_ER, inputs.X, train, inputs.clips)
    assert fitted == 0 and len(X_train) == 36 and len(X_test) == 12
    assert X_test[1][0] is inputs.X[4][0] and X_train[0][1] is inputs.X[1][1]


@pytest.mark.slow
def test_image_text_inputs_hold_each_clips_image_and_statement(ran):
    _, cache, _, _ = ran
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        inputs = recipes.load_inputs(recipes.MM_EMOR, store)
        clips = inputs.clips
        row = 11
        one = store_images(store, [clips["clip_id"][row]])
        text, _ = store.functionals(families=["text"])
        text_row = list(store.clips["clip_id"]).index(clips["clip_id"][row])
        # a clip's inputs do not depend on which other clips are loaded with it
        alone = recipes.image_text_inputs(recipes.MM_EMOR, store, clips.iloc[[row]], ["audio", "text"])
    images, texts = inputs.X
    assert images.shape == (48, 2, 64, 128) and texts.shape == (48, 384)
    np.testing.assert_array_equal(images[row], one[0])
    np.testing.assert_allclose(texts[row], text[text_row])
    np.testing.assert_array_equal(alone[0][0], images[row])
    np.testing.assert_array_equal(alone[1][0], texts[row])
    # the two statements, and nothing else: text carries no emotion in this corpus
    statements = clips["clip_id"].str.split("-").str[3].to_numpy()
    assert len(np.unique(texts.round(5), axis=0)) == 2
    np.testing.assert_allclose(texts[statements == "01"], np.repeat(texts[statements == "01"][:1], 24, axis=0),
                               atol=1e-6)
    train = np.arange(48) < 30
    (img_train, txt_train), (img_test, txt_test), _ = recipes.split_rows(recipes.MM_EMOR, inputs.X, train, clips)
    np.testing.assert_array_equal(img_test, images[30:])
    np.testing.assert_array_equal(txt_train, texts[:30])


@pytest.mark.slow
def test_fused_functionals_are_fitted_on_training_rows_only(ran):
    _, cache, _, _ = ran
    recipe = recipes.DV_EMOTIONNET
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        inputs = recipes.load_inputs(recipe, store)
    train = (inputs.clips["speaker"] == inputs.clips["speaker"][0]).to_numpy()
    Z_train, Z_test, _ = recipes.fold_matrices(recipe, inputs.X, train, inputs.clips)
    changed = recipes.Functionals({m: (X.copy(), names) for m, (X, names) in inputs.X.blocks.items()})
    for X, _ in changed.blocks.values():
        X[~train] = X[~train] * 3 + 7  # test clips that look nothing alike
    Z_train_again, Z_test_again, _ = recipes.fold_matrices(recipe, changed, train, inputs.clips)
    np.testing.assert_array_equal(Z_train_again, Z_train)
    assert Z_test.shape == Z_test_again.shape and not np.allclose(Z_test, Z_test_again)


def test_take_rows_takes_every_part_alike():
    images, texts = np.arange(10).reshape(5, 2), np.arange(5) * 10.0
    assert take_rows((images, None), [1, 3])[1] is None
    taken = take_rows((images, texts), np.array([4, 0]))
    np.testing.assert_array_equal(taken[0], [[8, 9], [0, 1]])
    np.testing.assert_array_equal(taken[1], [40, 0])
    sequences = [(np.zeros((3, 2)), np.ones((2, 4))) for _ in range(4)]
    assert take_rows(sequences, [2])[0] is sequences[2]


def test_unknown_input_kind_is_refused():
    recipe = dataclasses.replace(recipes.OMSN_ER, inputs="waveforms")
    with pytest.raises(EmofuseError, match="unknown input kind 'waveforms'"):
        recipes.input_kind(recipe)


def test_classifier_rows_and_the_epoch_cap():
    mgo, groups = recipes.make_recipe_classifier("omsn-mgo", {}, 0, max_epochs=5)
    assert groups and mgo.get_params()["estimator__max_epochs"] == 5
    mm, groups = recipes.make_recipe_classifier("mm_emor_text", {"dropout": 0.5}, 0, max_epochs=5)
    assert not groups and (mm.max_epochs, mm.dropout, mm.branches) == (5, 0.5, ("text",))
    cnn, _ = recipes.make_recipe_classifier("cnn1d", {"max_epochs": 2}, 0, max_epochs=5)
    assert cnn.max_epochs == 2  # a cap never raises
    svm, groups = recipes.make_recipe_classifier("svm", {}, 0, max_epochs=5)
    assert not groups and "max_epochs" not in svm.get_params()


def test_a_corpus_without_the_recipes_modalities_is_refused_before_extraction(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("clip_id,speaker,label,text\n" + "".join(
        f"u{i},s{i % 2},{'joy' if i % 3 else 'anger'},utterance number {i}\n" for i in range(6)))
    with pytest.raises(EmofuseError, match="omsn-er needs audio or video; the manifest corpus .* has only text"):
        recipes.run_recipe("omsn-er", "manifest", data_dir=manifest, cache_dir=tmp_path / "cache",
                           reports_dir=tmp_path / "reports")
    assert not (tmp_path / "cache").exists()
