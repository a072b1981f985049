"""Corpus readers: names parsed, modalities paired, bad names listed, clear errors."""

import hashlib
import json

import pytest

from extract.corpora import CLIP_COLUMNS, parse_ravdess_name, read_corpus, read_cremad, read_manifest, read_ravdess
from extract.errors import CorpusError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_parse_ravdess_name_fields():
    fields = parse_ravdess_name("03-01-05-02-01-02-12")
    assert fields["modality"] == "03"
    assert fields["vocal_channel"] == "speech"
    assert fields["intensity"] == "strong"
    assert (fields["statement"], fields["repetition"], fields["actor"]) == (1, 2, "12")
    assert fields["clip_id"] == "01-05-02-01-02-12"


@pytest.mark.parametrize("stem, reason", [
    ("03-01-09-01-01-01-01", "emotion 09"),
    ("04-01-01-01-01-01-01", "modality 04"),
    ("03-01-01-03-01-01-01", "intensity 03"),
    ("03-01-01-01-01-01", "7 two-digit fields"),
    ("readme", "7 two-digit fields"),
])
def test_parse_ravdess_name_rejects(stem, reason):
    with pytest.raises(CorpusError, match=reason):
        parse_ravdess_name(stem)


def test_ravdess_pairs_audio_with_video_and_lists_bad_names(tmp_path):
    touch(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav")
    touch(tmp_path / "Actor_01" / "02-01-05-01-01-01-01.mp4")
    touch(tmp_path / "Actor_01" / "01-01-05-01-01-01-01.mp4")  # audio-video file: video-only wins
    touch(tmp_path / "Actor_02" / "03-01-03-02-02-01-02.flac")  # audio only
    touch(tmp_path / "01-01-04-01-01-01-03.mp4")  # flat, audio-video only: both modalities from it
    touch(tmp_path / "Actor_01" / "03-02-05-01-01-01-01.wav")  # song: not read by default
    touch(tmp_path / "Actor_01" / "03-01-99-01-01-01-01.wav")  # bad emotion
    touch(tmp_path / "Actor_01" / "notes.txt")  # not media: ignored
    corpus = read_ravdess(tmp_path)
    clips = corpus.clips.set_index("clip_id")
    assert list(corpus.clips.columns[:len(CLIP_COLUMNS)]) == CLIP_COLUMNS
    assert len(clips) == 3
    angry = clips.loc["01-05-01-01-01-01"]
    assert angry.label == "angry" and angry.speaker == "01" and angry.gender == "male"
    assert angry.audio_path.endswith("03-01-05-01-01-01-01.wav")
    assert angry.video_path.endswith("02-01-05-01-01-01-01.mp4")
    happy = clips.loc["01-03-02-02-01-02"]
    assert happy.gender == "female" and happy.video_path == "" and happy.intensity == "strong"
    sad = clips.loc["01-04-01-01-01-03"]
    assert sad.audio_path == sad.video_path and sad.audio_path.endswith("01-01-04-01-01-01-03.mp4")
    assert len(corpus.skipped) == 1 and "emotion 99" in corpus.skipped[0][1]
    songs = read_ravdess(tmp_path, vocal_channel="song").clips
    assert list(songs["vocal_channel"]) == ["song"]


def test_ravdess_duplicate_listed_not_doubled(tmp_path):
    touch(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav")
    touch(tmp_path / "03-01-05-01-01-01-01.flac")
    corpus = read_ravdess(tmp_path)
    assert len(corpus.clips) == 1
    assert len(corpus.skipped) == 1 and "duplicate" in corpus.skipped[0][1]


def test_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(CorpusError, match="zenodo"):
        read_ravdess(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="AudioWAV"):
        read_cremad(tmp_path / "nowhere")


def test_empty_corpus_is_an_error(tmp_path):
    touch(tmp_path / "bad-name.wav")
    with pytest.raises(CorpusError, match="no usable clips.*1 files skipped"):
        read_ravdess(tmp_path)


def test_cremad_reader(tmp_path):
    touch(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    touch(tmp_path / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    touch(tmp_path / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    touch(tmp_path / "AudioWAV" / "1002_IEO_XYZ_HI.wav")  # bad emotion
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n")
    corpus = read_corpus("cremad", tmp_path)
    clips = corpus.clips.set_index("clip_id")
    assert list(clips.index) == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    assert clips.loc["1001_DFA_ANG_XX"].video_path.endswith(".flv")
    assert clips.loc["1001_DFA_ANG_XX"].gender == "male"
    assert clips.loc["1002_IEO_HAP_HI"].label == "happy" and clips.loc["1002_IEO_HAP_HI"].level == "high"
    assert clips.loc["1002_IEO_HAP_HI"].video_path == ""
    assert [r for _, r in corpus.skipped] == ["emotion XYZ is not one of ANG, DIS, FEA, HAP, NEU, SAD"]


def test_manifest_reader(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "audio_path,video_path,label,speaker,split,dialogue\n"
        "a/one.wav,v/one.mp4,joy,S1,train,7\n"
        "a/two.wav,,anger,S2,test,8\n"
        ",,anger,S2,test,9\n"
        "a/one.wav,,joy,S3,dev,10\n"
    )
    corpus = read_manifest(tmp_path)
    clips = corpus.clips.set_index("clip_id")
    assert list(clips.index) == ["one", "two"]
    assert clips.loc["one"].audio_path == str(tmp_path / "a" / "one.wav")
    assert clips.loc["two"].split == "test" and clips.loc["two"].dialogue == "8"
    reasons = [r for _, r in corpus.skipped]
    assert "neither audio_path nor video_path" in reasons[0]
    assert "duplicate clip id one" in reasons[1]


def test_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\nx.wav,joy\n")
    with pytest.raises(CorpusError, match="lacks the column speaker and any of audio_path, video_path, text"):
        read_manifest(tmp_path / "m.csv")


def test_text_only_manifest(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "clip_id,text,label,speaker,split\n"
        'u1,"Oh my  God,\tyou scared me!",surprise,Ross,train\n'
        "u2,,anger,Ross,train\n"
        ',"No clip id.",joy,Rachel,dev\n'
        "u3,I see.,neutral,Rachel,dev\n"
    )
    corpus = read_manifest(tmp_path)
    clips = corpus.clips.set_index("clip_id")
    assert list(clips.index) == ["u1", "u3"]
    assert clips.loc["u1"].text == "Oh my God, you scared me!"
    assert (clips.audio_path == "").all() and (clips.video_path == "").all()
    assert [r for _, r in corpus.skipped] == ["row has neither audio_path nor video_path nor text",
                                              "text-only row has no clip_id"]
    assert "text: 2" in corpus.summary()


def test_ravdess_text_is_the_statement(tmp_path):
    touch(tmp_path / "03-01-05-01-01-01-01.wav")
    touch(tmp_path / "03-01-05-01-02-01-01.wav")
    texts = read_ravdess(tmp_path).clips.set_index("clip_id")["text"]
    assert texts["01-05-01-01-01-01"] == "Kids are talking by the door"
    assert texts["01-05-01-02-01-01"] == "Dogs are sitting by the door"


def test_real_ravdess_speech(real_speech):
    corpus = read_corpus("ravdess", real_speech)
    assert len(corpus.clips) == 720 and corpus.clips["speaker"].nunique() == 12
    assert (corpus.clips["video_path"] == "").all()
    assert corpus.clips["label"].value_counts()["neutral"] == 48


def test_symlinked_actor_folders_are_followed_and_loops_stopped(tmp_path):
    """A corpus folder holding links to Actor_NN folders elsewhere reads like the real one; a link
    back up the tree is read once, and a link to a missing file is listed."""
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / "Actor_01" / "03-01-05-01-01-01-01.wav")
    touch(elsewhere / "Actor_02" / "03-01-03-02-02-01-02.wav")
    data = tmp_path / "data"
    data.mkdir()
    for actor in ("Actor_01", "Actor_02"):
        (data / actor).symlink_to(elsewhere / actor, target_is_directory=True)
    (elsewhere / "Actor_01" / "loop").symlink_to(data, target_is_directory=True)  # data/Actor_01/loop -> data
    (data / "03-01-01-01-01-01-03.wav").symlink_to(tmp_path / "gone.wav")
    (data / "Actor_03").symlink_to(tmp_path / "unmounted" / "Actor_03", target_is_directory=True)
    corpus = read_ravdess(data)
    assert list(corpus.clips["clip_id"]) == ["01-03-02-02-01-02", "01-05-01-01-01-01"]
    assert corpus.clips["audio_path"].str.startswith(str(data / "Actor_0")).all()
    assert corpus.skipped == [(str(data / "03-01-01-01-01-01-03.wav"), "a link to something that does not exist"),
                              (str(data / "Actor_03"), "a link to something that does not exist")]


def test_sources_and_identity(tmp_path):
    wav = touch(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav")
    touch(tmp_path / "Actor_01" / "02-01-05-01-01-01-01.mp4").write_bytes(b"four")
    corpus = read_ravdess(tmp_path)
    [sources] = [json.loads(s) for s in corpus.sources()]
    assert sources == {"audio": ["Actor_01/03-01-05-01-01-01-01.wav", 1, wav.stat().st_mtime_ns],
                       "video": ["Actor_01/02-01-05-01-01-01-01.mp4", 4, sources["video"][2]]}
    assert corpus.identity() == {"root": str(tmp_path.resolve()), "manifest_sha256": ""}
    manifest = tmp_path / "m.csv"
    manifest.write_text("audio_path,video_path,label,speaker\nActor_01/03-01-05-01-01-01-01.wav,,joy,S1\n")
    listed = read_manifest(manifest)
    assert listed.identity() == {"root": str(manifest.resolve()),
                                 "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()}
    assert json.loads(listed.sources()[0])["audio"][0] == "Actor_01/03-01-05-01-01-01-01.wav"


def test_vocal_channel_is_for_ravdess_only(tmp_path):
    touch(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    with pytest.raises(CorpusError, match="vocal channel.*RAVDESS-shaped corpora only, not for cremad"):
        read_corpus("cremad", tmp_path, vocal_channel="song")
    touch(tmp_path / "Actor_01" / "03-02-05-01-01-01-01.wav")
    assert list(read_corpus("synthetic", tmp_path, vocal_channel="song").clips["vocal_channel"]) == ["song"]
