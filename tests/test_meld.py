"""MELD transcripts -> manifest: encodings repaired, split and speaker overlap stated."""

from pathlib import Path

import pytest

from extract.corpora import read_manifest
from extract.errors import CorpusError
from extract.meld import clean_text, main, meld_manifest, read_meld_csv, speaker_overlap

MELD_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "meld-text"

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_clean_text_repairs_the_known_quirks():
    assert clean_text("You must\x92ve had your hands full\x85") == "You must've had your hands full..."
    assert clean_text("don\u00e2\u0080\u0099t") == "don't"  # UTF-8 read as Latin-1
    assert clean_text("“Yes” — she said…  ok") == '"Yes" - she said... ok'
    assert clean_text("Café au lait") == "Café au lait"  # real Latin-1 letters stay


def write_split(folder, name, rows, encoding="utf-8"):
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes((HEADER + "".join(rows)).encode(encoding))


def test_cp1252_file_and_manifest(tmp_path):
    write_split(tmp_path, "train_sent_emo.csv", [
        "1,Oh my God!,Ross,surprise,positive,0,0,1,1,a,b\n",
        "2,I don’t know.,Rachel,neutral,neutral,0,1,1,1,a,b\n",
        "3,Get out!,Joey,Anger,negative,1,0,1,1,a,b\n",
    ], encoding="cp1252")
    write_split(tmp_path, "dev_sent_emo.csv", ["1,Hi.,Ross,joy,positive,0,0,1,1,a,b\n",
                                               "2,Who are you?,Guest,fear,negative,0,1,1,1,a,b\n"])
    assert read_meld_csv(tmp_path / "train_sent_emo.csv")["Utterance"][1] == "I don't know."
    manifest = meld_manifest(tmp_path)
    assert list(manifest["clip_id"]) == ["train_dia0_utt0", "train_dia0_utt1", "train_dia1_utt0",
                                         "dev_dia0_utt0", "dev_dia0_utt1"]
    assert list(manifest["split"]) == ["train"] * 3 + ["test"] * 2
    assert manifest["label"][2] == "anger" and manifest["meld_split"][4] == "dev"
    overlap = speaker_overlap(manifest)
    assert overlap["shared_speakers"] == ["Ross"] and overlap["test_clips_by_shared"] == 0.5
    assert overlap["label"] == "speaker-overlapping split"
    out = tmp_path / "out" / "manifest.csv"
    assert main([str(tmp_path), str(out)]) == 0
    clips = read_manifest(out).clips.set_index("clip_id")
    assert clips.loc["train_dia0_utt1"].text == "I don't know." and clips.loc["dev_dia0_utt1"].split == "test"


def test_bad_meld_input_names_the_file(tmp_path):
    with pytest.raises(CorpusError, match="train_sent_emo.csv and dev_sent_emo.csv"):
        meld_manifest(tmp_path)
    write_split(tmp_path, "train_sent_emo.csv", ["1,Hi.,Ross,bored,neutral,0,0,1,1,a,b\n"])
    write_split(tmp_path, "dev_sent_emo.csv", ["1,Hi.,Ross,joy,positive,0,0,1,1,a,b\n"])
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv:2: .*unknown emotion 'bored'"):
        meld_manifest(tmp_path)
    (tmp_path / "dev_sent_emo.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CorpusError, match="not a MELD table, it lacks Utterance"):
        read_meld_csv(tmp_path / "dev_sent_emo.csv")


def test_real_meld_counts():
    folder = MELD_TEXT
    if not folder.is_dir():
        pytest.skip("../shared/data/meld-text is absent")
    manifest = meld_manifest(folder)
    counts = manifest.groupby("meld_split")["label"].value_counts()
    # MELD's published counts (Poria et al. 2019; Adel et al. 2023, Table 3).
    assert counts["train"].to_dict() == {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109,
                                         "sadness": 683, "disgust": 271, "fear": 268}
    assert counts["dev"].sum() == 1109 and counts["dev"]["fear"] == 40
    assert not manifest["text"].str.contains("[\u0080-\u009f’]").any()
    assert speaker_overlap(manifest)["label"] == "speaker-overlapping split"
