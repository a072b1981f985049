"""Published systems as recipes: one declarative definition each, run end to end on any corpus.

A `Recipe` names a paper's feature families per modality, the functional columns it keeps, an
optional learnt audio encoder, its fusion chain (``fusion.methods``), its classifier and the
ones the paper compares it with, and the paper's claimed numbers with their table and
protocol.  Copy one, change a field, and run it with `run_recipe`.

The path of one run::

    feature store with the recipe's families (``recipe_store``: the main store when it has
    them, else a recipe store beside it) -> clips' inputs of the recipe's input kind
    (``load_inputs``) -> per protocol (the paper's random 80/20 split of clips, for
    DV-EmotionNet also a random split of pieces of clips, and the speaker-independent
    ``speaker`` folds and LOSO), per fold, on the training side only: the kind's fold step
    -> classifiers -> classify.metrics.fold_scores -> reports/<dataset>/recipes.json
    -> recipes.md + figures

The input kind (``Recipe.inputs``, a key of ``INPUT_KINDS``) says what the classifiers are
fitted on, and is the one place a new kind of input is added: a loader that turns
``(recipe, store, clips, modalities)`` into the per-clip inputs ``X`` (row i for clip i), and a
fold step that gives one fold's training and test inputs, fitting anything data-dependent on
the training rows only (``split_rows`` when nothing is fitted):

- ``functionals``: per-clip functional vectors, fused by the recipe's fusion chain (and
  the optional audio autoencoder) fitted per fold;
- ``sequences``: per clip, a tuple of one frame sequence ``[shape=(t_m, d_m)]`` per
  modality, the frame-level streams of the modality's families side by side;
- ``images+text``: ``(images, texts)``, the mel + chroma spectrogram image of each clip
  (``features.images``) and its transcript's sentence embedding (``text`` family);
- ``mfcc+waveform+faces``: per clip ``(mfcc, waveform, faces)``, the MFCC map, the signal
  (``waveform`` family) and the face crops (``face_frames`` family, None without video) of
  ``classify.mamieva.MamievaClassifier``.

The figures of ``recipes.md`` are read from ``recipes.json``, never typed in.
"""

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from extract.atomic import atomic_path
from extract.corpora import read_corpus
from extract.errors import EmofuseError
from features.functionals import functionals
from features.images import ImageConfig, store_images
from features.runner import SOURCES, config_hash, default_config, run_features
from features.store import FeatureStore, store_path
from features.stream import Stream
from fusion.methods import build_pipeline
from fusion.protocol import RANDOM_SPLIT_WARNING, make_folds

from .classifiers import CLASSIFIERS, make_classifier
from .metrics import fold_scores, mean_and_std, one_vs_rest_accuracy, summarise_folds
from .report import plot_confusion, slug
from .tuning import take_rows

SCHEMA = "emofuse-recipes/1"
SEGMENT_PROTOCOL = "segments"
PROTOCOLS = ("random", SEGMENT_PROTOCOL, "speaker", "loso")
"""Protocols a recipe runs, in table order; ``segments`` only for recipes with ``segments > 0``."""
MODALITIES = ("audio", "video", "text")
PROTOCOL_HEADINGS = {
    "random": "emofuse, paper's protocol (random 80/20 of clips)",
    SEGMENT_PROTOCOL: "emofuse, random 80/20 of clip pieces (the paper's frame-level rows)",
    "speaker": "emofuse, speaker-independent folds",
    "loso": "emofuse, leave one speaker out",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One number a paper reports.

    Attributes
    ----------
    dataset : str
        The paper's corpus (``RAVDESS``, ``CREMA-D``, ``MELD`` ...).
    branch : {"audio", "video", "fused"}
        The modalities the number used.
    classifier : str
        The emofuse classifier name of the model it belongs to.
    accuracy : float
        In [0, 1].
    source : str
        Table and protocol, e.g. ``"Table 5; split NS, apparently random 80/20"``.
    as_printed : float or None
        The paper's own figure when ``accuracy`` is a re-reading of it, e.g. OMSN-ER's 0.9908,
        a one-vs-rest average, read as 0.9633 top-1 accuracy.
    """

    dataset: str
    branch: str
    classifier: str
    accuracy: float
    source: str
    as_printed: float = None


@dataclass(frozen=True)
class Recipe:
    """A published system as data: features, fusion, classifiers, and the paper's claims.

    Attributes
    ----------
    name : str
        ``RECIPE=`` name.
    title, reference : str
        Short system name and full citation.
    families : dict of str -> tuple of str
        Feature families per modality (``audio``, ``video``, ``text``), as ``features.runner``
        names them.
    method : str
        Fusion chain of ``fusion.methods`` (``concat`` first, e.g. ``mfa``, ``zebra``) of the
        ``functionals`` input kind; ``""`` for the other kinds, whose networks fuse.
    classifiers : tuple of (str, dict)
        Classifier names with parameters: registered ones (``classify.classifiers``) or
        networks of ``RECIPE_NETWORKS``; the first is the paper's model, the rest the models it
        is compared with.
    inputs : str
        What the classifiers are fitted on, a key of ``INPUT_KINDS``: ``functionals``,
        ``sequences`` or ``images+text`` (module docstring).
    input_params : dict
        Parameters of the kind's loader (``images+text``: ``features.images.ImageConfig``
        fields; default: its 2 x 64 x 128 images).
    classifier_protocols : dict of str -> tuple of str
        Protocols a classifier runs under when not every protocol (a costly tuned model).
    columns : dict of str -> str
        Per modality, a regular expression the kept functional columns (``functionals``) or
        frame-level columns (``sequences``) must match in full (absent: every column of the
        families).
    audio_encoder : dict or None
        ``{"family": ..., "columns": regex, "params": {...}}``: the audio block is instead
        ``fusion.autoencoder.SequenceAutoencoder(**params)`` trained, per fold, on the
        training clips' frames of that family's matching columns.
    fusion_params : dict
        Parameters of the fusion chain (``step__name``).
    video_to_audio_size : bool
        PCA of the video block to the audio block's width before fusion.
    segments : int
        Pieces per clip of the random split of pieces (0: no such protocol).
    claims : tuple of Claim
    notes : tuple of str
        Where the paper is silent and what this recipe does instead.
    """

    name: str
    title: str
    reference: str
    families: dict
    method: str
    classifiers: tuple
    claims: tuple = ()
    inputs: str = "functionals"
    input_params: dict = field(default_factory=dict)
    classifier_protocols: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    audio_encoder: dict = None
    fusion_params: dict = field(default_factory=dict)
    video_to_audio_size: bool = False
    segments: int = 0
    notes: tuple = ()

    def all_families(self) -> list:
        """Every family of every modality, in ``MODALITIES`` order."""
        return [f for modality in MODALITIES for f in self.families.get(modality, ())]


DV_EMOTIONNET = Recipe(
    name="dv-emotionnet",
    title="DV-EmotionNet",
    reference="Dommeti, Nallapati & Alfaris (2024), DV-EmotionNet, doi:10.23880/oajcij-16000112",
    families={"audio": ("energy", "zcr", "mfcc", "pitch_acf"), "video": ("stip",)},
    # The clip means of the paper's four audio features (MFCC without deltas: the paper names
    # none), and the voiced fraction of the autocorrelation pitch: 45 values.
    columns={"audio": r"(mfcc_\d+|zcr|rms|log_energy|f0_acf_voiced)_mean|voiced_acf_fraction"},
    method="mfa",
    # The paper's joint space: the MFA projection of the concatenated blocks, neither one MFA
    # per modality nor the projection appended to its input.
    fusion_params={"mfa__append": False, "mfa__per_block": False},
    video_to_audio_size=True,
    classifiers=(("cnn1d", {}),),
    segments=3,
    claims=(
        Claim("RAVDESS", "audio", "cnn1d", 0.9466, "Table 5, test accuracy; 8 classes; split NS (4320 rows = 3 per clip)"),
        Claim("RAVDESS", "video", "cnn1d", 0.9582, "Table 5, test accuracy; 6 classes; frame-level rows, split NS"),
        Claim("RAVDESS", "fused", "cnn1d", 0.9436, "Table 5, test accuracy; 6 classes; pooled rows, split NS"),
        Claim("CREMA-D", "audio", "cnn1d", 0.7945, "Table 5, test accuracy; 6 classes; split NS"),
        Claim("CREMA-D", "video", "cnn1d", 0.9662, "Table 5, test accuracy; 6 classes; frame-level rows, split NS"),
        Claim("CREMA-D", "fused", "cnn1d", 0.7014, "Table 5, test accuracy; 6 classes; pooled rows, split NS"),
    ),
    notes=(
        "Audio: RMS energy and log energy, zero-crossing rate, 40 MFCC and F0 by windowed autocorrelation "
        "(family pitch_acf) on 25 ms / 10 ms frames (64 ms for pitch) at 16 kHz; the paper states no window, "
        "rate or coefficient count. Per clip: the mean of each (the common public-notebook vector) and the "
        "voiced fraction, 45 values.",
        "Video: the 58 STIP functionals (Harris3D points, emofuse's scales and k; the paper gives none), "
        "reduced by PCA to the audio block's width when larger (the paper's 'unnamed reduction').",
        "Fusion: per-block standardisation, concatenation, Marginal Fisher Analysis into a joint space; the "
        "paper gives neither k1, k2, a PCA step nor the output size, so PCA dimension (30/60/120), k1 (5/10) and "
        "output size (n_classes - 1 or 20) are chosen per fold by speaker-grouped inner CV on the training "
        "clips (fusion.mfa.MarginalFisherAnalysisCV, logistic regression as the inner classifier).",
        "Classifier: FERCNN (cnn1d): five Conv1D layers of 256/128/64/64/32 filters, kernel 3, max-pool 3, "
        "dropout 0.2, dense 256; Adam 1e-3, batch 32, at most 30 epochs with early stopping on 15 % of the "
        "training clips (optimiser, rate, batch and epochs are NS). emofuse's convolutions pad to 'same' so that "
        "any input length works; the paper's 152,614 parameters need 'valid' padding on 162 inputs.",
        "The paper's 4320 audio rows are 3 per RAVDESS clip and its video rows are frames, split apparently at "
        "random: the 'clip pieces' column cuts every clip into 3 pieces and splits the pieces 80/20 at random, so "
        "pieces of one clip sit on both sides (video functionals, clip-level, repeat over a clip's pieces).",
    ),
)

KIRAR_BILSTM_SA = Recipe(
    name="kirar-bilstm-sa",
    title="Kirar et al. BiLSTM + self-attention",
    reference="Kirar, Gill, Jangra & Sharma (2024), IJISAE: autoencoder audio, ResNet-50 summary image, "
              "zebra selection, BiLSTM with self-attention",
    families={"audio": ("mfcc",), "video": ("hog_summary",)},
    audio_encoder={"family": "mfcc", "columns": r"mfcc_\d+",
                   "params": {"hidden_sizes": (64,), "bottleneck": 16, "pooling": ("mean", "std")}},
    method="zebra",
    classifiers=(("bilstm_sa_features", {}), ("bilstm_features", {}), ("cnn1d", {})),
    claims=(
        Claim("MELD", "fused", "bilstm_sa_features", 0.89834, "Table 1; 3 classes; random 80/20 after selection, "
              "about 3373 test rows from oversampled data"),
        Claim("MELD", "fused", "bilstm_features", 0.85151, "Table 1; same protocol"),
        Claim("MELD", "fused", "cnn1d", 0.8687, "Table 1; same protocol"),
    ),
    notes=(
        "Audio: an undercomplete autoencoder (40 -> 64 -> 16 -> 64 -> 40, ReLU, MSE, Adam 1e-3, 15 epochs over at "
        "most 30,000 frames) trained on the training clips' frame-level static MFCCs of each fold; the clip's "
        "features are the mean and standard deviation of its 16 bottleneck activations (32 values). The paper "
        "states no input, sizes or training.",
        "Video: HOG of the clip's mean face crop (hog_summary, 1764 values). The paper uses ResNet-50 features of "
        "that summary image; no pretrained weights can be downloaded here, so HOG stands in.",
        "Fusion: per-block standardisation, concatenation, zebra feature selection (binary ZOA over single columns, "
        "budget of 100 fitness evaluations with 10 zebras and their opposites, fitness = logistic regression's "
        "balanced accuracy under speaker-grouped inner CV plus a size penalty); the paper states none of these, "
        "nor how its 'improved' ZOA differs.",
        "Classifiers on the selected features: the standardised selected vector is cut into steps of 4 consecutive "
        "features (audio features first), a sequence the BiLSTM reads (the paper does not say how the vector "
        "becomes a sequence); BiLSTM (32 units per direction) with 4-head self-attention, residual and layer norm, "
        "mean pooling, softmax; the plain BiLSTM without attention; and the FERCNN 1-D CNN for the paper's CNN "
        "(its layers are NS). Adam 3e-3 (CNN 1e-3), batch 32, early stopping on 15 % of the training clips.",
    ),
)

OMSN_ER = Recipe(
    name="omsn-er",
    title="OMSN-ER",
    reference="Patil, Virupakshappa & Vijaya (2024), OMSN-ER: BiLSTM features, MPDRF-Net dense residual fusion, "
              "self-attention CNN (SMGCNN) with its learning rate tuned by the mountain gazelle optimiser",
    families={"audio": ("mfcc", "energy", "zcr", "pitch", "spectral", "envelope", "mcr"), "video": ("hog",)},
    inputs="sequences",
    # Static MFCCs (the paper names no deltas) beside the other audio streams: 52 values a frame.
    columns={"audio": r"(?!mfcc_\d+_delta).*"},
    method="",
    classifiers=(("omsn-mgo", {}), ("omsn", {})),
    classifier_protocols={"omsn-mgo": ("random",)},
    claims=(
        Claim("RAVDESS", "fused", "omsn-mgo", 0.9633, "Table 1, read as top-1: the printed 'accuracy' 0.9908 is the "
              "one-vs-rest average 1 - 2 (1 - 0.9633) / 8 (precision, recall and F1 0.9633); 8 classes, "
              "80/20 split, random vs actor-wise NS, no test set", as_printed=0.9908),
    ),
    notes=(
        "Audio frames (10 ms): 40 static MFCCs, RMS and log energy, zero-crossing rate, F0 (YIN) and voicing, "
        "FFT-based spectral centroid, spread, roll-off, flux and flatness, the amplitude envelope (per-frame peak "
        "of |x|) and the mean-crossing rate (zero crossings of x minus its mean): 52 values. The paper names "
        "these parts but defines none (no coefficient counts, windows or definitions).",
        "Video frames: HOG of each 64 x 64 face crop (8-pixel cells, 2 x 2 blocks, 9 orientations: 1764 values); "
        "the paper gives no HOG settings. Its preprocessing (bilateral filter, spectral noise gate at 0.1) is "
        "not reproduced.",
        "Network (classify.omsn): per modality a BiLSTM (32 units a direction) over the frames averaged in runs "
        "of 4, mean-pooled and projected to a 10 x 10 map (the paper's two input layers); MPDRF-Net built from "
        "its description only (channel-pixel weighting, a nested encoder-decoder of aggregated-residual blocks "
        "with dense skips and a residual transformer at the bottleneck, widths 16/32/64); SMGCNN with a SAGAN "
        "self-attention block and a dense softmax head. Cross-entropy: the paper's binary cross-entropy on a "
        "single-label 8-class task is taken as a slip. Adam, batch 32, at most 60 epochs (the paper: 200) with "
        "early stopping after 8 epochs without improvement on 15 % of the training clips (the paper states no "
        "stopping rule).",
        "MGO (omsn-mgo, the paper's model): the learning rate in [1e-4, 1e-2] on a log scale, each candidate "
        "scored by its balanced accuracy over 2 speaker-grouped inner folds of the training speakers only; the "
        "chosen rate is refitted on all of them and written per fold (chosen). Budget: a herd of 3 for one "
        "iteration, 15 candidates = 30 inner trainings + 1 refit per outer fold, the smallest MGO budget (the "
        "paper: 50 gazelles x 100 iterations, about 20,000 trainings, on data NS), run under the paper's split "
        "only: the speaker folds and LOSO would cost 31 trainings per fold, 4 + 12 folds on 12 actors. omsn is "
        "the same network at Adam's default rate 1e-3 under every protocol.",
        "The one-vs-rest figure (1 - 2 (1 - accuracy) / k) is given beside each accuracy: it is what the paper "
        "prints as accuracy, and it rises towards 1 with the number of classes whatever the model.",
    ),
)

MM_EMOR = Recipe(
    name="mm-emor",
    title="MM-EMOR",
    reference="Adel, Fathalla & Abo ElFarag (2023), MM-EMOR: multi-modal emotion recognition of social media "
              "using concatenated deep learning networks, Big Data and Cognitive Computing 7(4), 164",
    families={"audio": ("mel", "chroma"), "text": ("text",)},
    inputs="images+text",
    method="",
    classifiers=(("mm_emor", {}), ("mm_emor_image", {}), ("mm_emor_text", {})),
    claims=(
        Claim("IEMOCAP", "fused", "mm_emor", 0.7706, "Table 6, 4 classes (variant A), 5-fold CV, folds NS; "
              "printed as 'UA' beside 'WA' 0.7792: the paper swaps the names, 0.7706 is overall accuracy"),
        Claim("IEMOCAP", "fused", "mm_emor", 0.7622, "Table 6, variant B (happiness + excitement); 'UA' as printed "
              "= overall accuracy"),
        Claim("MELD", "fused", "mm_emor", 0.6333, "Table 7, 7 classes, official split, test set"),
    ),
    notes=(
        "Audio image: a 2 x 64 x 128 image per clip, channel 0 the 64-band log-mel spectrogram (25 ms / 10 ms, "
        "16 kHz, dB below the clip's maximum clipped at 80 dB, scaled to [0, 1]), channel 1 the 12-class "
        "chromagram repeated over the rows, the time axis stretched to 128 columns (features.images); the paper "
        "states no parameters and 'merges' the two images in a way NS.",
        "Image branch: a MobileNetV2-style CNN (four inverted-residual stages up to 64 channels, 128-value "
        "encoding) trained from scratch with the head: no ImageNet weights offline (whether the paper's were "
        "pretrained or frozen is NS).",
        "Text branch: all-MiniLM-L6-v2 sentence embeddings (384 values, the text family), frozen. RoBERTa-base's "
        "weights cannot be downloaded here. On RAVDESS and the synthetic corpus a clip's text is its statement "
        "(two sentences, the same for every emotion), so text carries no emotion there: the text-only row "
        "(mm_emor_text) shows it. Text-only MELD (dev) runs through `python -m classify holdout`.",
        "Head: concatenation, dense 128 ReLU with an L2 penalty of 1e-3 on its weights, dropout 0.3, softmax; "
        "Adam 1e-3, batch 32, 30 epochs, keeping the epoch with the lowest loss on 15 % of the training clips "
        "(the paper keeps 'the best model reached', which may have looked at the test fold). Units, penalty, "
        "rate and batch are NS.",
        "mm_emor_image and mm_emor_text are the same network on one branch (run where both modalities exist).",
    ),
)

MAMIEVA_ATTENTION = Recipe(
    name="mamieva-attention",
    title="Mamieva et al. attention fusion",
    reference="Mamieva, Abdusalomov, Kutlimuratov, Muminov & Whangbo (2023), Multimodal emotion detection via "
              "attention-based fusion of extracted facial and speech features, Sensors 23(12), 5475",
    families={"audio": ("mfcc", "waveform"), "video": ("face_frames",)},
    columns={"audio": r"mfcc_\d+"},
    inputs="mfcc+waveform+faces",
    method="",
    classifiers=(("mamieva", {}),),
    claims=(
        Claim("IEMOCAP", "fused", "mamieva", 0.746, "Table 2, 4 classes; printed as 'WA': the mean over classes "
              "of the one-vs-rest balanced accuracy (TP N/P + TN)/2N, not overall accuracy (compare "
              "wa_mamieva in recipes.json); F1 66.1; 70/10/20 split said to be Session 5, yet 898 test clips "
              "= 20 % of 4490"),
        Claim("CMU-MOSEI", "fused", "mamieva", 0.807, "Table 2, 6 classes; 'WA' as for IEMOCAP; F1 73.7; "
              "70/10/20 split, random or speaker-wise NS"),
    ),
    notes=(
        "Speech: 40 static MFCCs (the store's 25 ms / 10 ms frames at 16 kHz, averaged in runs of 4 into 40 ms steps; "
        "the paper uses 64 ms frames, hop NS) through three parallel 2-D blocks with kernels 3x3, 9x1 and 1x11 "
        "(frames x coefficients; which axis is time is NS), 8 filters each, batch norm, ReLU, 2x2 max-pool, a 3x3 "
        "depthwise convolution, an average over time; and the signal at 8 kHz (the waveform family; rate NS), "
        "z-normalised per clip as in the paper, through three 1-D convolutions with the paper's kernels 8/6/6 and "
        "max-pools 10/8/8 but 16/32/64 filters instead of 64/128/256 and strides 8/2/1 (NS), CPU-sized. Inputs are "
        "cut or padded to 4 s, centred.",
        "Face: 8 crops of 32 x 32 grey pixels per clip, evenly spread (the face_frames family; frames, sampling and "
        "size are NS), through a small CNN trained from scratch (3x3 convolutions of 8/16/32 filters, an average "
        "over a 2x2 grid), averaged over the crops: the paper's pretrained ResNet with feature pyramids cannot be "
        "loaded offline.",
        "Fusion as eqs. 4-6: each encoding through a dense layer to s = 64, X = tanh(W A), omega = softmax(w^T X) over "
        "the two modalities, F = A omega^T; then dense 64 ReLU, dropout 0.3, softmax (the classification layer is "
        "NS). Without video the model is the speech encoder alone.",
        "Training (the paper's Table 1 is missing): Adam 1e-3, batch 32, at most 30 epochs, stopping after 6 without "
        "improvement of the loss on 15 % of the training clips (training speakers only) and keeping the best epoch.",
        "The paper's 'WA' is a per-class one-vs-rest balanced accuracy, averaged over classes in a way NS; "
        "recipes.json holds emofuse's wa_mamieva (its class mean) beside accuracy and UA.",
    ),
)

RECIPES = {recipe.name: recipe for recipe in (DV_EMOTIONNET, KIRAR_BILSTM_SA, OMSN_ER, MM_EMOR, MAMIEVA_ATTENTION)}


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name``, or an EmofuseError listing the known ones."""
    if name not in RECIPES:
        raise EmofuseError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


# ---------------------------------------------------------------------------------------------
# The feature store a recipe reads
# ---------------------------------------------------------------------------------------------


def recipe_store(recipe: Recipe, dataset: str, data_dir=None, *, cache_dir=Path("cache"), jobs=2,
                 progress=False) -> Path:
    """The feature store holding ``recipe``'s families, extracted or brought up to date first.

    The dataset's main store (``<cache_dir>/<dataset>/features.h5``) is used when its
    configuration computes every family of the recipe with emofuse's default parameters; it
    is then only brought up to date under its own configuration (never moved aside).
    Otherwise the recipe's families are extracted, with default parameters, into a store of
    their own, ``<cache_dir>/<dataset>/recipes/<config hash>/<dataset>/features.h5``, shared by
    every recipe with the same families; the main store is left untouched.

    Parameters
    ----------
    recipe : Recipe
    dataset : str
    data_dir : path or None
        The corpus.  None: ``data/<dataset>`` when it exists; without a corpus an existing
        store is used as it is.
    cache_dir : Path
    jobs : int
        Extraction worker processes.
    progress : bool
        Show the extraction's progress bar.

    Returns
    -------
    path : Path

    Raises
    ------
    EmofuseError
        No usable store and no corpus to extract one from, or a corpus without any modality
        of the recipe.
    """
    cache_dir = Path(cache_dir)
    if data_dir is None and (Path("data") / dataset).is_dir():
        data_dir = Path("data") / dataset
    main = store_path(dataset, cache_dir)
    if main.is_file():
        with FeatureStore.open(main) as store:
            config = store.config
        if _config_covers(config, recipe):
            if data_dir is not None:
                run_features(dataset, data_dir, jobs=jobs, cache_dir=cache_dir, config=config, progress=progress)
            return main
    config = default_config(recipe.all_families())
    own_cache = cache_dir / dataset / "recipes" / config_hash(config)
    own = store_path(dataset, own_cache)
    if data_dir is not None:
        _check_corpus_modalities(recipe, dataset, data_dir)
        log.info("recipe %s: extracting %s into %s (the main store lacks them)", recipe.name,
                 ", ".join(recipe.all_families()), own)
        run_features(dataset, data_dir, jobs=jobs, cache_dir=own_cache, config=config, progress=progress)
    if not own.is_file():
        raise EmofuseError(f"recipe {recipe.name} needs the feature families {', '.join(recipe.all_families())}, "
                           f"which no store of {dataset!r} under {cache_dir} holds; pass the corpus (--data-dir) "
                           "to extract them")
    return own


def _check_corpus_modalities(recipe: Recipe, dataset: str, data_dir) -> None:
    """Refuse, before any extraction, a corpus that has none of the recipe's modalities."""
    clips = read_corpus(dataset, data_dir).clips
    present = [m for m, column in SOURCES.items() if (clips[column].astype(str) != "").any()]
    wanted = [m for m in MODALITIES if recipe.families.get(m)]
    if not set(present) & set(wanted):
        raise EmofuseError(f"recipe {recipe.name} needs {' or '.join(wanted)}; the {dataset} corpus at {data_dir} "
                           f"has only {' and '.join(present) or 'nothing'}")


def _config_covers(config: dict, recipe: Recipe) -> bool:
    """True when a store configuration computes the recipe's families with default parameters.

    The defaults are those of a store computing the stored families, so that the parameters of
    an opt-in family (``waveform_sr``, ``face_frames_size`` ...) are compared when it is there."""
    stored_families = [f for m in MODALITIES for f in config.get(m, {}).get("families", ())]
    defaults = default_config(stored_families or None)
    for modality in [m for m in MODALITIES if m != "text" or recipe.families.get(m)]:
        stored = dict(config.get(modality, {}))
        if not set(recipe.families.get(modality, ())) <= set(stored.pop("families", ())):
            return False
        default = {k: v for k, v in defaults[modality].items() if k != "families"}
        if stored != default:
            return False
    return config.get("faces") == defaults["faces"]


# ---------------------------------------------------------------------------------------------
# Inputs, folds and the per-fold chain
# ---------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """What a recipe's classifiers read for each clip (rows of ``clips``).

    Attributes
    ----------
    clips : pd.DataFrame
        The clips that have every used modality, in store order.
    modalities : list of str
        The modalities the run uses.
    X : object
        The clips' inputs of the recipe's input kind, row ``i`` for clip ``i``: `Functionals`,
        a list of per-modality sequence tuples, or ``(images, texts)`` (module docstring).
    """

    clips: pd.DataFrame
    modalities: list
    X: object


@dataclass
class Functionals:
    """Inputs of the ``functionals`` kind.

    ``blocks``: modality -> (X [shape=(n, d)], names); ``sequences``: the audio encoder's
    frame sequences (list of (t_i, d)), or None without an encoder.
    """

    blocks: dict
    sequences: list = None


@dataclass(frozen=True)
class InputKind:
    """One kind of classifier input: how it is loaded and how a fold gets its part.

    Attributes
    ----------
    load : callable
        ``load(recipe, store, clips, modalities) -> X``: the inputs of the rows of ``clips``
        (row ``i`` for clip ``i``) from the feature store, computed per clip: nothing here
        may depend on other clips.
    fold : callable
        ``fold(recipe, X, train, clips, seed) -> (X_train, X_test, n_parameters)``: one fold's
        training and test inputs (``train`` a boolean row mask), anything data-dependent
        fitted on the training rows only, and the trainable parameters of what was fitted
        (0 when nothing).
    modalities : tuple of str
        The modalities it can feed.
    """

    load: Callable
    fold: Callable
    modalities: tuple


def load_inputs(recipe: Recipe, store: FeatureStore) -> Inputs:
    """The recipe's inputs from ``store``, of its input kind.

    Only clips that have every used modality (finite functionals of the modality's families)
    are kept.  A modality of the recipe that the store has no features of is left out (the
    run reports the branch it used).

    Raises
    ------
    EmofuseError
        The store holds no modality of the recipe, or the input kind is unknown.
    """
    kind = input_kind(recipe)
    modalities = [m for m in kind.modalities if recipe.families.get(m)
                  and any(f in store.families(m) or f in store.sequence_families() for f in recipe.families[m])
                  and store.has_modality(m)]
    if not modalities:
        raise EmofuseError(f"recipe {recipe.name}: the {store.dataset!r} store has none of its families "
                           f"({', '.join(recipe.all_families())})")
    present = np.ones(len(store), bool)
    for modality in modalities:
        families = [f for f in recipe.families[modality] if f in store.families(modality)]
        if modality == "audio" and recipe.audio_encoder:
            families = [recipe.audio_encoder["family"]]
        present &= np.isfinite(store.functionals(families=families)[0]).any(axis=1)
    clips = store.clips.iloc[np.flatnonzero(present)].reset_index(drop=True)
    return Inputs(clips=clips, modalities=modalities, X=kind.load(recipe, store, clips, modalities))


def input_kind(recipe: Recipe) -> InputKind:
    """The `InputKind` of ``recipe.inputs``, or an EmofuseError listing the known ones."""
    if recipe.inputs not in INPUT_KINDS:
        raise EmofuseError(f"recipe {recipe.name}: unknown input kind {recipe.inputs!r}; "
                           f"known: {', '.join(INPUT_KINDS)}")
    return INPUT_KINDS[recipe.inputs]


def _store_rows(store: FeatureStore, clips: pd.DataFrame) -> np.ndarray:
    """Positions in ``store.clips`` of the rows of ``clips``."""
    return pd.Index(store.clips["clip_id"]).get_indexer(clips["clip_id"])


def _columns(names, pattern) -> list:
    """Positions of the ``names`` that match ``pattern`` in full (all of them for None)."""
    return [j for j, name in enumerate(names) if not pattern or re.fullmatch(pattern, name)]


def clip_frames(store: FeatureStore, clip_id: str, families, pattern=None) -> np.ndarray:
    """One clip's frame-level streams of ``families`` side by side.

    Parameters
    ----------
    store : FeatureStore
    clip_id : str
    families : sequence of str
        Frame-level families of one modality (one clock; a stream a frame longer than
        another, from its analysis window, is cut to the shortest).
    pattern : str or None
        Regular expression the kept column names must match in full.

    Returns
    -------
    np.ndarray [shape=(t, d), dtype=float32]
    """
    streams = [store.sequence(str(clip_id), family) for family in families]
    length = min(len(stream.values) for stream in streams)
    values = np.hstack([stream.values[:length] for stream in streams])
    return values[:, _columns([n for stream in streams for n in stream.names], pattern)].astype(np.float32)


def functional_inputs(recipe: Recipe, store: FeatureStore, clips: pd.DataFrame, modalities) -> Functionals:
    """The ``functionals`` kind: each modality's functional columns, and the encoder's frames."""
    rows = _store_rows(store, clips)
    blocks = {}
    for modality in modalities:
        if modality == "audio" and recipe.audio_encoder:
            continue
        X, names = store.functionals(families=[f for f in recipe.families[modality] if f in store.families(modality)])
        keep = _columns(names, recipe.columns.get(modality))
        blocks[modality] = (X[rows][:, keep].astype(np.float64), [names[j] for j in keep])
    sequences = None
    if "audio" in modalities and recipe.audio_encoder:
        family, pattern = recipe.audio_encoder["family"], recipe.audio_encoder["columns"]
        sequences = [clip_frames(store, clip_id, [family], pattern).astype(np.float64) for clip_id in clips["clip_id"]]
    return Functionals(blocks, sequences)


def sequence_inputs(recipe: Recipe, store: FeatureStore, clips: pd.DataFrame, modalities) -> list:
    """The ``sequences`` kind: per clip, a tuple of one frame sequence per modality.

    Returns
    -------
    list of tuple of np.ndarray
        Per clip ``(frames of modality 1 [shape=(t_1, d_1)], ...)`` in the order of
        ``modalities``: the frame-level streams of the modality's families (`clip_frames`),
        the columns matching ``recipe.columns[modality]``, raw (standardisation is the
        classifier's, on its training clips).
    """
    families = {m: [f for f in recipe.families[m] if f in store.sequence_families()] for m in modalities}
    return [tuple(clip_frames(store, clip_id, families[m], recipe.columns.get(m)) for m in modalities)
            for clip_id in clips["clip_id"]]


def image_text_inputs(recipe: Recipe, store: FeatureStore, clips: pd.DataFrame, modalities) -> tuple:
    """The ``images+text`` kind: ``(images, texts)``.

    Returns
    -------
    images : np.ndarray [shape=(n, 2, height, width), dtype=float32] or None
        Mel + chroma spectrogram images (``features.images.store_images`` with
        ``ImageConfig(**recipe.input_params)``); None without audio.
    texts : np.ndarray [shape=(n, d)] or None
        The ``text`` family's sentence embeddings; None without text.
    """
    images = texts = None
    if "audio" in modalities:
        images = store_images(store, [str(c) for c in clips["clip_id"]], ImageConfig(**recipe.input_params))
    if "text" in modalities:
        X, _ = store.functionals(families=[f for f in recipe.families["text"] if f in store.families("text")])
        texts = X[_store_rows(store, clips)].astype(np.float64)
    return images, texts


def mfcc_waveform_face_inputs(recipe: Recipe, store: FeatureStore, clips: pd.DataFrame, modalities) -> list:
    """The ``mfcc+waveform+faces`` kind: per clip ``(mfcc, waveform, faces)``.

    Returns
    -------
    list of tuple
        Per clip: the recipe's frame-level audio families other than ``waveform``, side by side
        (`clip_frames`, columns matching ``recipe.columns["audio"]``) ``[shape=(t, d)]``; the
        ``waveform`` stream ``[shape=(n,)]``; the ``face_frames`` crops ``[shape=(f, s, s)]``
        (grey levels in [0, 1]), or None when the run has no video.
    """
    frames = [f for f in recipe.families["audio"] if f != "waveform" and f in store.sequence_families()]
    X = []
    for clip_id in (str(c) for c in clips["clip_id"]):
        faces = None
        if "video" in modalities:
            crops = store.sequence(clip_id, "face_frames").values
            side = int(round(np.sqrt(crops.shape[1])))
            faces = crops.reshape(len(crops), side, side)
        X.append((clip_frames(store, clip_id, frames, recipe.columns.get("audio")),
                  store.sequence(clip_id, "waveform").values[:, 0], faces))
    return X


def segment_inputs(recipe: Recipe, store: FeatureStore, inputs: Inputs) -> Inputs:
    """The ``functionals`` inputs of every clip cut into ``recipe.segments`` equal pieces
    (rows ``<clip_id>#<k>``).

    Audio functionals are recomputed on each piece of the recipe's frame-level audio streams
    (``features.functionals.functionals``, same columns); video functionals are clip-level and
    repeat over a clip's pieces.
    """
    n = recipe.segments
    families = [f for f in recipe.families["audio"] if f in store.sequence_families()]
    pattern = recipe.columns.get("audio")
    rows, audio = [], []
    for i, clip_id in enumerate(inputs.clips["clip_id"]):
        streams = [store.sequence(str(clip_id), f) for f in families]
        for k in range(n):
            parts = []
            names = []
            for stream in streams:
                edges = np.linspace(0, len(stream.values), n + 1).round().astype(int)
                piece = Stream(stream.values[edges[k] : max(edges[k + 1], edges[k] + 1)], stream.names,
                               stream.frame_rate, stream.unit)
                values, piece_names = functionals(piece)
                parts.append(values)
                names += piece_names
            audio.append(np.concatenate(parts)[_columns(names, pattern)])
            rows.append(i)
    rows = np.array(rows)
    clips = inputs.clips.iloc[rows].reset_index(drop=True)
    clips["clip_id"] = [f"{c}#{k}" for c, k in zip(clips["clip_id"], np.tile(np.arange(n), len(inputs.clips)))]
    blocks = {"audio": (np.array(audio, np.float64), inputs.X.blocks["audio"][1])}
    for modality, (X, names) in inputs.X.blocks.items():
        if modality != "audio":
            blocks[modality] = (X[rows], names)
    return Inputs(clips=clips, modalities=inputs.modalities, X=Functionals(blocks))


def fold_matrices(recipe: Recipe, X: Functionals, train: np.ndarray, clips: pd.DataFrame, seed: int = 0):
    """The ``functionals`` kind's fold step: fused training and test features, fitted on the
    training rows only.

    Parameters
    ----------
    recipe : Recipe
    X : Functionals
    train : np.ndarray [shape=(n,), dtype=bool]
        Training rows; the others are tested.
    clips : pd.DataFrame
        The rows' clips (labels and speakers of the supervised fusion steps).
    seed : int

    Returns
    -------
    Z_train, Z_test : np.ndarray
        Fused features of the training and test rows.
    encoder_parameters : int
        Trainable parameters of the audio encoder (0 without one).
    """
    labels = clips["label"].astype(str).to_numpy()
    speakers = clips["speaker"].astype(str).to_numpy()
    matrices, blocks, encoder_parameters = [], [], 0
    modalities = (["audio"] if X.sequences is not None else []) + list(X.blocks)
    for modality in [m for m in MODALITIES if m in modalities]:
        if modality == "audio" and X.sequences is not None:
            from fusion.autoencoder import SequenceAutoencoder

            encoder = SequenceAutoencoder(random_state=seed, **recipe.audio_encoder.get("params", {}))
            encoder.fit([s for s, t in zip(X.sequences, train) if t])
            block = encoder.transform(X.sequences)
            encoder_parameters = sum(p.numel() for p in encoder.network_.parameters())
        else:
            block = X.blocks[modality][0]
        matrices.append(block)
        blocks.append([modality, block.shape[1]])
    params = dict(recipe.fusion_params)
    if recipe.video_to_audio_size and len(blocks) == 2 and blocks[1][1] > blocks[0][1]:
        params["concat__pca"] = {"video": blocks[0][1]}
    pipeline = build_pipeline(recipe.method, blocks, seed=seed, **params)
    stacked = np.hstack(matrices)
    Z_train = pipeline.fit_transform(stacked[train], labels[train], groups=speakers[train])
    Z_test = pipeline.transform(stacked[~train]) if (~train).any() else np.empty((0, Z_train.shape[1]))
    return Z_train, Z_test, encoder_parameters


def split_rows(recipe: Recipe, X, train: np.ndarray, clips: pd.DataFrame, seed: int = 0):
    """The fold step of kinds that fit nothing outside the classifier: the training and test rows
    of ``X`` (`classify.tuning.take_rows`), and 0 parameters."""
    return take_rows(X, np.flatnonzero(train)), take_rows(X, np.flatnonzero(~train)), 0


INPUT_KINDS = {
    "functionals": InputKind(functional_inputs, fold_matrices, ("audio", "video", "text")),
    "sequences": InputKind(sequence_inputs, split_rows, ("audio", "video")),
    "images+text": InputKind(image_text_inputs, split_rows, ("audio", "text")),
    "mfcc+waveform+faces": InputKind(mfcc_waveform_face_inputs, split_rows, ("audio", "video")),
}
"""Input kinds a recipe can name (``Recipe.inputs``); add a kind here with its loader and fold step."""


@dataclass(frozen=True)
class RecipeNetwork:
    """A classifier only recipes feed (its inputs are neither vectors nor the evaluate stage's
    sequences), for ``Recipe.classifiers``.

    Attributes
    ----------
    build : callable
        ``build(random_state) -> estimator``.
    needs : tuple of str
        Modalities a run must use for the row to run (an ablation row runs only beside the
        fused model it takes apart).
    """

    build: Callable
    needs: tuple = ()


def _mm_emor(**fixed):
    def build(random_state):
        from .mm_emor import MmEmorClassifier

        return MmEmorClassifier(random_state=random_state, **fixed)
    return build


def _mamieva(random_state):
    from .mamieva import MamievaClassifier

    return MamievaClassifier(random_state=random_state)


RECIPE_NETWORKS = {
    "mm_emor": RecipeNetwork(_mm_emor()),
    "mm_emor_image": RecipeNetwork(_mm_emor(branches=("image",)), needs=("audio", "text")),
    "mm_emor_text": RecipeNetwork(_mm_emor(branches=("text",)), needs=("audio", "text")),
    "mamieva": RecipeNetwork(_mamieva),
}
"""Networks of ``images+text`` recipes: MM-EMOR (image and text branches; with one modality, that
branch alone), and its image-only and text-only ablations; of ``mfcc+waveform+faces`` recipes:
Mamieva et al.'s attention fusion (speech alone without video)."""


def make_recipe_classifier(name: str, params: dict, seed: int = 0, max_epochs=None):
    """A fresh estimator for one row of ``Recipe.classifiers``.

    Parameters
    ----------
    name : str
    params : dict
    seed : int
    max_epochs : int or None
        Cap on the epochs of every network in it (``max_epochs`` and ``*__max_epochs``
        parameters), for a shorter run; None: as the recipe says.

    Returns
    -------
    estimator : scikit-learn classifier
        ``CLASSIFIERS[name]`` or ``RECIPE_NETWORKS[name]`` with ``params`` set.
    groups : bool
        Its ``fit`` takes ``groups=`` (the training clips' speakers, for inner tuning).
    """
    if name in RECIPE_NETWORKS:
        estimator, groups = RECIPE_NETWORKS[name].build(seed), False
    else:
        estimator, groups = make_classifier(name, random_state=seed), CLASSIFIERS[name].groups
    if params:
        estimator.set_params(**params)
    if max_epochs is not None:
        epochs = {key: min(value, max_epochs) for key, value in estimator.get_params().items()
                  if key == "max_epochs" or key.endswith("__max_epochs")}
        estimator.set_params(**epochs)
    return estimator, groups


def n_parameters(estimator) -> int:
    """Trainable parameters of a fitted torch classifier, or of the network a tuned one refitted
    (0 for other estimators)."""
    network = getattr(getattr(estimator, "best_estimator_", estimator), "network_", None)
    return int(sum(p.numel() for p in network.parameters() if p.requires_grad)) if network is not None else 0


# ---------------------------------------------------------------------------------------------
# Running a recipe
# ---------------------------------------------------------------------------------------------


def run_recipe(recipe, dataset: str, *, data_dir=None, cache_dir=Path("cache"), reports_dir=Path("reports"),
               protocols=PROTOCOLS, jobs=2, seed=0, max_epochs=None, progress=False) -> dict:
    """Run a recipe end to end on a corpus and merge its results into ``recipes.json``.

    Parameters
    ----------
    recipe : Recipe or str
    dataset : str
    data_dir : path or None
        See `recipe_store`.
    cache_dir, reports_dir : Path
    protocols : sequence of str
        From ``PROTOCOLS``; ``segments`` is skipped for a recipe without ``segments``.
    jobs : int
        Feature extraction workers.
    seed : int
        Seed of the folds, the fusion steps and the networks.
    max_epochs : int or None
        Cap on every network's epochs (`make_recipe_classifier`), recorded in the results and
        the report; None: the recipe's own.
    progress : bool

    Returns
    -------
    summary : dict
        ``results`` (this run's entries), ``json`` and ``report`` (paths).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise EmofuseError(f"unknown recipe protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    path = recipe_store(recipe, dataset, data_dir, cache_dir=cache_dir, jobs=jobs, progress=progress)
    results = []
    with FeatureStore.open(path) as store:
        inputs = load_inputs(recipe, store)
        for protocol in [p for p in PROTOCOLS if p in protocols]:
            if protocol == SEGMENT_PROTOCOL:
                if not recipe.segments or recipe.inputs != "functionals" or "audio" not in inputs.X.blocks:
                    continue
                protocol_inputs = segment_inputs(recipe, store, inputs)
                folds = make_folds(protocol_inputs.clips, "random", seed=seed)
            else:
                protocol_inputs = inputs
                folds = make_folds(inputs.clips, protocol, seed=seed)
            results += _run_protocol(recipe, protocol_inputs, protocol, folds, seed, max_epochs)
    branch = _branch(inputs.modalities)
    for entry in results:
        entry |= {"dataset": dataset, "branch": branch, "store": str(path)}
    report_dir = Path(reports_dir) / dataset
    document = merge_recipe_results(read_recipe_results(report_dir / "recipes.json"), results, dataset)
    document["skipped"] = {k: v for k, v in document.get("skipped", {}).items() if k != recipe.name}
    missing = [m for m in MODALITIES if recipe.families.get(m) and m not in inputs.modalities]
    if missing:
        document.setdefault("branch_notes", {})[recipe.name] = (
            f"{' and '.join(missing)} branch not run: the {dataset} store has no {' or '.join(missing)} features")
    else:
        document.setdefault("branch_notes", {}).pop(recipe.name, None)
    write_recipe_results(report_dir / "recipes.json", document)
    report = write_recipe_report(report_dir, document)
    return {"results": results, "json": report_dir / "recipes.json", "report": report}


def _branch(modalities) -> str:
    return "fused" if len(modalities) > 1 else modalities[0]


def _run_protocol(recipe, inputs, protocol, folds, seed, max_epochs=None) -> list:
    """Fit the recipe on every fold of one protocol; one result entry per classifier."""
    ids = inputs.clips["clip_id"].astype(str).to_numpy()
    labels = inputs.clips["label"].astype(str).to_numpy()
    speakers = inputs.clips["speaker"].astype(str).to_numpy()
    classes = sorted(set(labels.tolist()))
    kind = input_kind(recipe)
    rows = [(name, params) for name, params in recipe.classifiers
            if protocol in recipe.classifier_protocols.get(name, PROTOCOLS)
            and set(RECIPE_NETWORKS[name].needs if name in RECIPE_NETWORKS else ()) <= set(inputs.modalities)]
    per_classifier = {name: {"folds": [], "seconds": 0.0, "parameters": 0} for name, _ in rows}
    fold_seconds, width = 0.0, None
    for fold in folds:
        train = np.isin(ids, fold.train_ids)
        start = time.perf_counter()
        X_train, X_test, fitted_parameters = kind.fold(recipe, inputs.X, train, inputs.clips, seed)
        fold_seconds += time.perf_counter() - start
        width = int(X_train.shape[1]) if isinstance(X_train, np.ndarray) and X_train.ndim == 2 else None
        for name, params in rows:
            start = time.perf_counter()
            estimator, groups = make_recipe_classifier(name, params, seed, max_epochs)
            estimator.fit(X_train, labels[train], **({"groups": speakers[train]} if groups else {}))
            predicted = np.asarray(estimator.predict(X_test)).astype(str)
            record = per_classifier[name]
            record["seconds"] += time.perf_counter() - start
            record["parameters"] = n_parameters(estimator) + fitted_parameters
            scores = fold_scores(labels[~train], predicted, classes, speakers[~train])
            chosen = {"chosen": estimator.best_params_} if hasattr(estimator, "best_params_") else {}
            record["folds"].append({"fold": fold.fold, "test_speakers": fold.test_speakers, **scores,
                                    "ovr_accuracy": one_vs_rest_accuracy(scores["confusion"]), **chosen})
        log.info("%s %s fold %d done", recipe.name, protocol, fold.fold)
    entries = []
    for name, record in per_classifier.items():
        summary = summarise_folds(record["folds"])
        ovr, ovr_std = mean_and_std([f["ovr_accuracy"] for f in record["folds"]])
        entries.append({
            "recipe": recipe.name, "classifier": name, "protocol": protocol, "modalities": list(inputs.modalities),
            "inputs": recipe.inputs, "wall_s": round(fold_seconds + record["seconds"], 2),
            "n_parameters": record["parameters"], "n_rows": len(ids), "feature_width": width, **summary,
            "ovr_accuracy": ovr, "ovr_accuracy_std": ovr_std, "labels": classes, "n_folds": len(folds),
            "folds": record["folds"], **({"max_epochs": max_epochs} if max_epochs is not None else {}),
            **({"warning": RANDOM_SPLIT_WARNING} if protocol in ("random", SEGMENT_PROTOCOL) else {}),
        })
        log.info("%s %s %s: accuracy %.3f, UA %.3f", recipe.name, protocol, name, entries[-1]["accuracy"],
                 entries[-1]["ua"])
    return entries


def run_all(dataset: str, **options) -> dict:
    """Run every registered recipe the corpus allows; a recipe that cannot run is listed as skipped.

    ``options`` as `run_recipe`.  Returns ``{"results": [...], "skipped": {name: reason}, "report": path}``.
    """
    results, skipped, report = [], {}, None
    for name, recipe in RECIPES.items():
        try:
            summary = run_recipe(recipe, dataset, **options)
        except EmofuseError as err:
            skipped[name] = str(err)
            log.warning("recipe %s skipped: %s", name, err)
            continue
        results += summary["results"]
        report = summary["report"]
    report_dir = Path(options.get("reports_dir", Path("reports"))) / dataset
    document = read_recipe_results(report_dir / "recipes.json") | {"dataset": dataset}
    document["skipped"] = skipped
    write_recipe_results(report_dir / "recipes.json", document)
    report = write_recipe_report(report_dir, document)
    return {"results": results, "skipped": skipped, "report": report}


# ---------------------------------------------------------------------------------------------
# recipes.json and recipes.md
# ---------------------------------------------------------------------------------------------


def read_recipe_results(path: Path) -> dict:
    """The content of ``recipes.json``; an empty document when absent or of another schema."""
    path = Path(path)
    document = json.loads(path.read_text()) if path.is_file() else {}
    return document if document.get("schema") == SCHEMA else {"schema": SCHEMA, "results": []}


def merge_recipe_results(existing: dict, results: list, dataset: str) -> dict:
    """Replace entries with the same (recipe, classifier, protocol), keep the others."""
    key = lambda e: (e["recipe"], e["classifier"], e["protocol"])  # noqa: E731
    merged = {key(e): e for e in existing.get("results", [])} | {key(e): e for e in results}
    order = {name: i for i, name in enumerate(RECIPES)}

    def classifier_rank(entry):
        names = [name for name, _ in RECIPES[entry["recipe"]].classifiers] if entry["recipe"] in RECIPES else []
        return names.index(entry["classifier"]) if entry["classifier"] in names else len(names)

    entries = sorted(merged.values(), key=lambda e: (order.get(e["recipe"], len(order)), e["recipe"],
                                                     classifier_rank(e), e["classifier"],
                                                     PROTOCOLS.index(e["protocol"])))
    return existing | {"schema": SCHEMA, "dataset": dataset, "results": entries}


def write_recipe_results(path: Path, document: dict) -> Path:
    """Write ``recipes.json`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return Path(path)


def paper_claim(recipe: Recipe, classifier: str, branch: str, dataset: str):
    """The paper's claim to set beside a result: the classifier's claim on the same branch and
    corpus (RAVDESS for the RAVDESS-shaped ``synthetic``) if there is one, else on the same branch,
    else its first claim (the table cell names the claim's corpus and branch); None without any."""
    wanted = {"synthetic": "RAVDESS"}.get(dataset, dataset).upper().replace("-", "")
    own = [c for c in recipe.claims if c.classifier == classifier]
    same_branch = [c for c in own if c.branch == branch]
    same_corpus = [c for c in same_branch if c.dataset.upper().replace("-", "") == wanted]
    return next(iter(same_corpus + same_branch + own), None)


def _score(entry, one_vs_rest=False) -> str:
    if entry is None:
        return "—"
    spread = f" ± {100 * entry['accuracy_std']:.1f}" if entry["n_folds"] > 1 else ""
    ovr = f"; one-vs-rest {100 * entry['ovr_accuracy']:.1f}" if one_vs_rest else ""
    return f"{100 * entry['accuracy']:.1f}{spread} (UA {100 * entry['ua']:.1f}{ovr})"


def _claimed(claim) -> str:
    if claim is None:
        return "—"
    printed = f"; printed as {100 * claim.as_printed:.2f}" if claim.as_printed is not None else ""
    return f"{100 * claim.accuracy:.2f} ({claim.dataset} {claim.branch}{printed}; {claim.source})"


def write_recipe_report(report_dir: Path, document: dict) -> Path:
    """Write ``recipes.md`` and one confusion matrix per recipe from ``recipes.json``'s content."""
    report_dir = Path(report_dir)
    dataset = document["dataset"]
    lines = [f"# Published systems as recipes: {dataset}", "",
             "Written by `python -m classify recipes --run` / `recipe` from `recipes.json` beside this file. "
             "Cells: accuracy % (mean ± std over folds) and UA % (unweighted average recall). The paper's claim "
             "is its own number under its own protocol; the random splits put the same speakers (and for pieces, "
             "the same clips) on both sides and are shown only to measure that inflation; the speaker-independent "
             "columns are emofuse's honest figures. Wall time: fusion and training of that classifier over all folds of "
             "all protocols (features already extracted); parameters: trainable parameters of the network (and of "
             "the audio autoencoder). The confusion matrix is the paper's model under the speaker-independent folds. "
             "Where a paper prints a one-vs-rest average as accuracy, its claim shows both readings and the cells "
             "add emofuse's one-vs-rest figure.",
             ""]
    by_recipe = {}
    for entry in document["results"]:
        by_recipe.setdefault(entry["recipe"], []).append(entry)
    for name, entries in by_recipe.items():
        recipe = RECIPES.get(name)
        title = recipe.title if recipe else name
        branch = entries[0]["branch"]
        lines += [f"## {title} (`{name}`)", ""]
        if recipe:
            lines += [recipe.reference + ".", ""]
        caps = sorted({e["max_epochs"] for e in entries if "max_epochs" in e})
        capped = f"Networks' epochs capped at {', '.join(map(str, caps))} in this run (--max-epochs). " if caps else ""
        lines += [f"Modalities used: {', '.join(entries[0]['modalities'])} ({branch} branch). " + capped
                  + document.get("branch_notes", {}).get(name, ""), ""]
        protocols = [p for p in PROTOCOLS if any(e["protocol"] == p for e in entries)]
        one_vs_rest = bool(recipe) and any(c.as_printed is not None for c in recipe.claims)
        lines += ["| classifier | paper's claim (accuracy %) | " + " | ".join(PROTOCOL_HEADINGS[p] for p in protocols)
                  + " | wall time (s) | parameters |", "|---" * (4 + len(protocols)) + "|"]
        for classifier in dict.fromkeys(e["classifier"] for e in entries):
            row = {e["protocol"]: e for e in entries if e["classifier"] == classifier}
            claimed = _claimed(paper_claim(recipe, classifier, branch, dataset) if recipe else None)
            wall = sum(e["wall_s"] for e in row.values())
            parameters = max(e["n_parameters"] for e in row.values())
            lines.append(f"| {classifier} | {claimed} | "
                         + " | ".join(_score(row.get(p), one_vs_rest) for p in protocols)
                         + f" | {wall:.0f} | {f'{parameters:,}' if parameters else '—'} |")
        lines.append("")
        for entry in entries:
            chosen = [fold["chosen"] for fold in entry["folds"] if "chosen" in fold]
            if chosen:
                values = "; ".join(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in c.items()) for c in chosen)
                lines += [f"Chosen inside the training speakers, {entry['classifier']}, "
                          f"{PROTOCOL_HEADINGS[entry['protocol']].removeprefix('emofuse, ')}, per fold: {values}.", ""]
        main = entries[0]["classifier"]
        reference = next((e for e in entries if e["protocol"] == "speaker" and e["classifier"] == main), entries[0])
        figure = f"figures/recipe_{slug(name)}_{slug(reference['classifier'])}_{reference['protocol']}.png"
        plot_confusion(reference["confusion"], reference["labels"],
                       f"{name}: {reference['classifier']}, {reference['protocol']} (accuracy "
                       f"{100 * reference['accuracy']:.1f} %), all folds", report_dir / figure)
        lines += [f"![confusion {name}]({figure})", ""]
        if recipe and recipe.notes:
            lines += ["Where the paper is silent:", ""] + [f"- {note}" for note in recipe.notes] + [""]
    for name, reason in document.get("skipped", {}).items():
        lines += [f"## `{name}`: skipped", "", reason, ""]
    path = report_dir / "recipes.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def describe(recipe: Recipe) -> str:
    """A few lines for ``python -m classify recipes``."""
    families = "; ".join(f"{m}: {', '.join(f)}" for m, f in recipe.families.items())
    classifiers = ", ".join(name for name, _ in recipe.classifiers)
    claims = "; ".join(f"{c.dataset} {c.branch} {c.classifier} {100 * c.accuracy:.2f} %" for c in recipe.claims)
    return (f"{recipe.name}: {recipe.title}\n  {recipe.reference}\n  families: {families}\n"
            f"  inputs: {recipe.inputs}; fusion: {recipe.method or 'inside the network'}"
            f"{' (audio autoencoder)' if recipe.audio_encoder else ''}; "
            f"classifiers: {classifiers}\n  claims: {claims}")

