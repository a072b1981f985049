"""Published systems as recipes, end to end on a tiny synthetic audio-visual corpus."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from classify import recipes
from classify.__main__ import main as classify_main
from extract.errors import EmofuseError
from extract.synthetic import generate_corpus
from features.functionals import functionals
from features.runner import default_config, run_features
from features.store import FeatureStore, store_path

EMOTIONS = ("03", "04", "05")  # happy, sad, angry: 8 takes each per actor


def fast(recipe):
    """The recipe with a few epochs and iterations, so the tests take seconds."""
    changes = {"classifiers": tuple((name, params | {"max_epochs": 2}) for name, params in recipe.classifiers)}
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
    """Both recipes run by `recipes --run` over a main store that has the families of both."""
    root = tmp_path_factory.mktemp("run")
    cache, reports = root / "cache", root / "reports"
    families = recipes.DV_EMOTIONNET.all_families() + recipes.KIRAR_BILSTM_SA.all_families()
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
    assert found == {("dv-emotionnet", "cnn1d", p) for p in ("random", "segments", "speaker", "loso")} | {
        ("kirar-bilstm-sa", c, p) for c in ("bilstm_sa_features", "bilstm_features", "cnn1d")
        for p in ("random", "speaker", "loso")}
    for entry in document["results"]:
        assert entry["modalities"] == ["audio", "video"] and entry["branch"] == "fused"
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


@pytest.mark.slow
def test_report_reads_its_figures_from_recipes_json(ran):
    _, _, reports, _ = ran
    document = json.loads((reports / "synthetic" / "recipes.json").read_text())
    text = (reports / "synthetic" / "recipes.md").read_text()
    for entry in document["results"]:
        assert f"{100 * entry['accuracy']:.1f}" in text and f"UA {100 * entry['ua']:.1f}" in text
    assert "94.36 (RAVDESS fused" in text and "89.83 (MELD fused" in text
    for figure in re.findall(r"\]\((figures/[^)]+\.png)\)", text):
        assert (reports / "synthetic" / figure).stat().st_size > 1000
    assert len(re.findall(r"!\[confusion", text)) == 2


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
        assert inputs.functionals["audio"][0].shape == (48, 45)
        pieces = recipes.segment_inputs(recipe, store, inputs)
        clip_id = inputs.clips["clip_id"][0]
        stream = store.sequence(clip_id, "mfcc")
        edges = np.linspace(0, len(stream.values), 4).round().astype(int)
        values, names = functionals(dataclasses.replace(stream, values=stream.values[edges[1]:edges[2]]))
    row = list(pieces.clips["clip_id"]).index(f"{clip_id}#1")
    column = pieces.functionals["audio"][1].index("mfcc_3_mean")
    assert pieces.functionals["audio"][0][row, column] == pytest.approx(values[names.index("mfcc_3_mean")], rel=1e-5)
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
