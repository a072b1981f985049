"""The built-in synthetic corpus: RAVDESS's layout and file names, voices and faces drawn from models.

It lets the whole pipeline run and be tested with no download, and it is a fair test bed:
the voice (:mod:`.voice`) carries mainly arousal and the face (:mod:`.face`) mainly valence,
with per-take acting variability and per-actor differences, so each modality alone is an
imperfect 8-class cue and fusing them helps.

    >>> from extract.synthetic import generate_corpus
    >>> generate_corpus("data/synthetic", actors=8, seed=0)  # doctest: +SKIP
"""

from .corpus import generate_corpus

__all__ = ["generate_corpus"]
