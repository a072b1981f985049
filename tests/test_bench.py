"""`make bench`'s inputs where ../shared/data is absent: synthetic RAVDESS-shaped clips stand in."""

import soundfile as sf

from extract.corpora import parse_ravdess_name
from extract.decode import video_info
from features import bench


def test_synthetic_clips_stand_in_for_the_shared_recordings(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "SHARED", tmp_path / "absent")
    audio, source = bench.audio_inputs(7, tmp_path)
    assert source.startswith("synthetic") and len(audio) == 7
    assert [parse_ravdess_name(p.stem)["actor"] for p in audio] == ["01"] * 6 + ["02"]
    assert {sf.info(p).samplerate for p in audio} == {48000} and all(2.0 < sf.info(p).duration < 6.0 for p in audio)
    video, source = bench.video_inputs(tmp_path)
    assert source.startswith("synthetic") and len(video) == 4
    info = video_info(video[0])
    assert (info.width, info.height) == (1280, 720) and info.n_frames > 30
