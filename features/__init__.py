"""Stage 2: audio and video features of every clip, in one HDF5 feature store per corpus.

The path of one clip: ``runner.extract_clip`` -> ``audio.audio_streams`` + ``audio.clip_features``
and ``video.video_features`` (HOG, ``stip``) -> ``functionals.functionals`` -> ``store``.
"""
