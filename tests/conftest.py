"""Shared test fixtures: where ../shared lives, and small files made on the fly."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_SPEECH = SHARED / "data" / "ravdess-speech"
REAL_VIDEO = SHARED / "data" / "ravdess-video-actor05"


@pytest.fixture
def real_speech() -> Path:
    """Real RAVDESS speech of actors 01-12 (720 FLAC clips), or skip where ../shared is absent."""
    if not REAL_SPEECH.is_dir():
        pytest.skip("../shared/data/ravdess-speech is absent")
    return REAL_SPEECH


@pytest.fixture
def real_video() -> Path:
    """Four real 720p RAVDESS face videos of actor 05, or skip where ../shared is absent."""
    if not REAL_VIDEO.is_dir():
        pytest.skip("../shared/data/ravdess-video-actor05 is absent")
    return REAL_VIDEO
