"""Stage 1: find the clips of a corpus, decode audio and video, find and crop faces.

The path of one clip: ``corpora.read_corpus`` (clip table) -> ``decode.load_audio`` /
``decode.iter_grey_frames`` -> ``faces.track_faces`` (aligned grey face crops).
"""
