"""Published systems as recipes: one declarative definition each, run end to end on any corpus.

A `Recipe` names a paper's feature families per modality, the functional columns it keeps, an
optional learnt audio encoder, its fusion chain (``fusion.methods``), its classifier and the
ones the paper compares it with, and the paper's claimed numbers with their table and
protocol.  Copy one, change a field, and run it with `run_recipe`.

The path of one run::

    feature store with the recipe's families (``recipe_store``: the main store when it has
    them, else a recipe store beside it) -> clips' inputs per modality (``load_inputs``)
    -> per protocol (the paper's random 80/20 split of clips, for DV-EmotionNet also a random
       split of pieces of clips, and the speaker-independent ``speaker`` folds and LOSO),
       per fold, on the training side only: [autoencoder] -> fusion pipeline -> classifiers
    -> classify.metrics.fold_scores -> reports/<dataset>/recipes.json -> recipes.md + figures

The figures of ``recipes.md`` are read from ``recipes.json``, never typed in.
"""

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from extract.atomic import atomic_path
from extract.errors import EmofuseError
from features.functionals import functionals
from features.runner import config_hash, default_config, run_features
from features.store import FeatureStore, store_path
from features.stream import Stream
from fusion.methods import build_pipeline
from fusion.protocol import RANDOM_SPLIT_WARNING, make_folds

from .classifiers import make_classifier
from .metrics import fold_scores, summarise_folds
from .report import plot_confusion, slug

SCHEMA = "emofuse-recipes/1"
SEGMENT_PROTOCOL = "segments"
PROTOCOLS = ("random", SEGMENT_PROTOCOL, "speaker", "loso")
"""Protocols a recipe runs, in table order; ``segments`` only for recipes with ``segments > 0``."""
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
    """

    dataset: str
    branch: str
    classifier: str
    accuracy: float
    source: str


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
        Feature families per modality (``audio``, ``video``), as ``features.runner`` names them.
    columns : dict of str -> str
        Per modality, a regular expression the kept functional columns must match in full
        (absent: every column of the families).
    audio_encoder : dict or None
        ``{"family": ..., "columns": regex, "params": {...}}``: the audio block is instead
        ``fusion.autoencoder.SequenceAutoencoder(**params)`` trained, per fold, on the
        training clips' frames of that family's matching columns.
    method : str
        Fusion chain of ``fusion.methods`` (``concat`` first, e.g. ``mfa``, ``zebra``).
    fusion_params : dict
        Its parameters (``step__name``).
    video_to_audio_size : bool
        PCA of the video block to the audio block's width before fusion.
    classifiers : tuple of (str, dict)
        Registered classifier names with parameters; the first is the paper's model, the rest
        the models it is compared with.
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
    columns: dict = field(default_factory=dict)
    audio_encoder: dict = None
    fusion_params: dict = field(default_factory=dict)
    video_to_audio_size: bool = False
    segments: int = 0
    notes: tuple = ()

    def all_families(self) -> list:
        """Every family of every modality, audio first."""
        return [f for modality in ("audio", "video") for f in self.families.get(modality, ())]


DV_EMOTIONNET = Recipe(
    name="dv-emotionnet",
    title="DV-EmotionNet",
    reference="Dommeti, Nallapati & Alfaris (2024), DV-EmotionNet, doi:10.23880/oajcij-16000112",
    families={"audio": ("energy", "zcr", "mfcc", "pitch_acf"), "video": ("stip",)},
    # The clip means of the paper's four audio features (MFCC without deltas: the paper names
    # none), and the voiced fraction of the autocorrelation pitch: 45 values.
    columns={"audio": r"(mfcc_\d+|zcr|rms|log_energy|f0_acf_voiced)_mean|voiced_acf_fraction"},
    method="mfa",
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
        "Fusion: per-block standardisation, concatenation, Marginal Fisher Analysis after PCA to 60 "
        "dimensions with k1 = 5 and n_classes - 1 outputs (the paper gives neither k1, k2 nor the output size).",
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

RECIPES = {recipe.name: recipe for recipe in (DV_EMOTIONNET, KIRAR_BILSTM_SA)}


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
        No usable store and no corpus to extract one from.
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
        log.info("recipe %s: extracting %s into %s (the main store lacks them)", recipe.name,
                 ", ".join(recipe.all_families()), own)
        run_features(dataset, data_dir, jobs=jobs, cache_dir=own_cache, config=config, progress=progress)
    if not own.is_file():
        raise EmofuseError(f"recipe {recipe.name} needs the feature families {', '.join(recipe.all_families())}, "
                           f"which no store of {dataset!r} under {cache_dir} holds; pass the corpus (--data-dir) "
                           "to extract them")
    return own


def _config_covers(config: dict, recipe: Recipe) -> bool:
    """True when a store configuration computes the recipe's families with default parameters."""
    defaults = default_config()
    for modality in ("audio", "video"):
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
    """What a recipe reads for each clip (rows of ``clips``).

    ``functionals``: modality -> (X [shape=(n, d)], names); ``sequences``: the audio encoder's
    frame sequences (list of (t_i, d)) or None; ``modalities``: those the run uses.
    """

    clips: pd.DataFrame
    modalities: list
    functionals: dict
    sequences: list = None


def load_inputs(recipe: Recipe, store: FeatureStore) -> Inputs:
    """The recipe's inputs from ``store``: its functional columns and encoder sequences.

    Only clips that have every used modality are kept.  A modality of the recipe that the
    store has no features of is left out (the run reports the branch it used).

    Raises
    ------
    EmofuseError
        The store holds no modality of the recipe.
    """
    modalities = [m for m in ("audio", "video") if recipe.families.get(m)
                  and any(f in store.families(m) or f in store.sequence_families() for f in recipe.families[m])
                  and store.has_modality(m)]
    if not modalities:
        raise EmofuseError(f"recipe {recipe.name}: the {store.dataset!r} store has none of its families "
                           f"({', '.join(recipe.all_families())})")
    blocks, present = {}, np.ones(len(store), bool)
    for modality in modalities:
        if modality == "audio" and recipe.audio_encoder:
            present &= np.isfinite(store.functionals(families=[recipe.audio_encoder["family"]])[0]).any(axis=1)
            continue
        families = [f for f in recipe.families[modality] if f in store.families(modality)]
        X, names = store.functionals(families=families)
        pattern = recipe.columns.get(modality)
        if pattern:
            keep = [j for j, name in enumerate(names) if re.fullmatch(pattern, name)]
            X, names = X[:, keep], [names[j] for j in keep]
        blocks[modality] = (X.astype(np.float64), names)
        present &= np.isfinite(X).any(axis=1)
    rows = np.flatnonzero(present)
    clips = store.clips.iloc[rows].reset_index(drop=True)
    sequences = None
    if "audio" in modalities and recipe.audio_encoder:
        family, pattern = recipe.audio_encoder["family"], recipe.audio_encoder["columns"]
        sequences = []
        for clip_id in clips["clip_id"]:
            stream = store.sequence(str(clip_id), family)
            keep = [j for j, name in enumerate(stream.names) if re.fullmatch(pattern, name)]
            sequences.append(stream.values[:, keep].astype(np.float64))
    blocks = {m: (X[rows], names) for m, (X, names) in blocks.items()}
    return Inputs(clips=clips, modalities=modalities, functionals=blocks, sequences=sequences)


def segment_inputs(recipe: Recipe, store: FeatureStore, inputs: Inputs) -> Inputs:
    """The inputs of every clip cut into ``recipe.segments`` equal pieces (rows ``<clip_id>#<k>``).

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
            keep = [j for j, name in enumerate(names) if not pattern or re.fullmatch(pattern, name)]
            audio.append(np.concatenate(parts)[keep])
            rows.append(i)
    rows = np.array(rows)
    clips = inputs.clips.iloc[rows].reset_index(drop=True)
    clips["clip_id"] = [f"{c}#{k}" for c, k in zip(clips["clip_id"], np.tile(np.arange(n), len(inputs.clips)))]
    blocks = {"audio": (np.array(audio, np.float64), inputs.functionals["audio"][1])}
    if "video" in inputs.functionals:
        X, names = inputs.functionals["video"]
        blocks["video"] = (X[rows], names)
    return Inputs(clips=clips, modalities=inputs.modalities, functionals=blocks)


def fold_matrices(recipe: Recipe, inputs: Inputs, train: np.ndarray, seed: int = 0):
    """The fused training and test features of one fold, fitted on its training rows only.

    Parameters
    ----------
    recipe : Recipe
    inputs : Inputs
    train : np.ndarray [shape=(n,), dtype=bool]
        Training rows; the others are tested.
    seed : int

    Returns
    -------
    Z_train, Z_test : np.ndarray
        Fused features of the training and test rows.
    encoder_parameters : int
        Trainable parameters of the audio encoder (0 without one).
    """
    labels = inputs.clips["label"].astype(str).to_numpy()
    speakers = inputs.clips["speaker"].astype(str).to_numpy()
    matrices, blocks, encoder_parameters = [], [], 0
    for modality in inputs.modalities:
        if modality == "audio" and inputs.sequences is not None:
            from fusion.autoencoder import SequenceAutoencoder

            encoder = SequenceAutoencoder(random_state=seed, **recipe.audio_encoder.get("params", {}))
            encoder.fit([s for s, t in zip(inputs.sequences, train) if t])
            X = encoder.transform(inputs.sequences)
            encoder_parameters = sum(p.numel() for p in encoder.network_.parameters())
        else:
            X = inputs.functionals[modality][0]
        matrices.append(X)
        blocks.append([modality, X.shape[1]])
    params = dict(recipe.fusion_params)
    if recipe.video_to_audio_size and len(blocks) == 2 and blocks[1][1] > blocks[0][1]:
        params["concat__pca"] = {"video": blocks[0][1]}
    pipeline = build_pipeline(recipe.method, blocks, seed=seed, **params)
    X = np.hstack(matrices)
    Z_train = pipeline.fit_transform(X[train], labels[train], groups=speakers[train])
    Z_test = pipeline.transform(X[~train]) if (~train).any() else np.empty((0, Z_train.shape[1]))
    return Z_train, Z_test, encoder_parameters


def n_parameters(estimator) -> int:
    """Trainable parameters of a fitted torch classifier (0 for other estimators)."""
    network = getattr(estimator, "network_", None)
    return int(sum(p.numel() for p in network.parameters() if p.requires_grad)) if network is not None else 0


# ---------------------------------------------------------------------------------------------
# Running a recipe
# ---------------------------------------------------------------------------------------------


def run_recipe(recipe, dataset: str, *, data_dir=None, cache_dir=Path("cache"), reports_dir=Path("reports"),
               protocols=PROTOCOLS, jobs=2, seed=0, progress=False) -> dict:
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
                if not recipe.segments or "audio" not in inputs.functionals:
                    continue
                protocol_inputs = segment_inputs(recipe, store, inputs)
                folds = make_folds(protocol_inputs.clips, "random", seed=seed)
            else:
                protocol_inputs = inputs
                folds = make_folds(inputs.clips, protocol, seed=seed)
            results += _run_protocol(recipe, protocol_inputs, protocol, folds, seed)
    branch = _branch(inputs.modalities)
    for entry in results:
        entry |= {"dataset": dataset, "branch": branch, "store": str(path)}
    report_dir = Path(reports_dir) / dataset
    document = merge_recipe_results(read_recipe_results(report_dir / "recipes.json"), results, dataset)
    document["skipped"] = {k: v for k, v in document.get("skipped", {}).items() if k != recipe.name}
    missing = [m for m in ("audio", "video") if recipe.families.get(m) and m not in inputs.modalities]
    if missing:
        document.setdefault("branch_notes", {})[recipe.name] = (
            f"{' and '.join(missing)} branch not run: the {dataset} store has no {' or '.join(missing)} features")
    else:
        document.setdefault("branch_notes", {}).pop(recipe.name, None)
    write_recipe_results(report_dir / "recipes.json", document)
    report = write_recipe_report(report_dir, document)
    return {"results": results, "json": report_dir / "recipes.json", "report": report}


def _branch(modalities) -> str:
    return "fused" if len(modalities) == 2 else modalities[0]


def _run_protocol(recipe, inputs, protocol, folds, seed) -> list:
    """Fit the recipe on every fold of one protocol; one result entry per classifier."""
    ids = inputs.clips["clip_id"].astype(str).to_numpy()
    labels = inputs.clips["label"].astype(str).to_numpy()
    speakers = inputs.clips["speaker"].astype(str).to_numpy()
    classes = sorted(set(labels.tolist()))
    per_classifier = {name: {"folds": [], "seconds": 0.0, "parameters": 0} for name, _ in recipe.classifiers}
    fusion_seconds = 0.0
    for fold in folds:
        train = np.isin(ids, fold.train_ids)
        start = time.perf_counter()
        Z_train, Z_test, encoder_parameters = fold_matrices(recipe, inputs, train, seed)
        fusion_seconds += time.perf_counter() - start
        for name, params in recipe.classifiers:
            start = time.perf_counter()
            estimator = make_classifier(name, random_state=seed)
            if params:
                estimator.set_params(**params)
            estimator.fit(Z_train, labels[train])
            predicted = np.asarray(estimator.predict(Z_test)).astype(str)
            record = per_classifier[name]
            record["seconds"] += time.perf_counter() - start
            record["parameters"] = n_parameters(estimator) + encoder_parameters
            record["folds"].append({"fold": fold.fold, "test_speakers": fold.test_speakers,
                                    **fold_scores(labels[~train], predicted, classes, speakers[~train])})
        log.info("%s %s fold %d done", recipe.name, protocol, fold.fold)
    entries = []
    for name, record in per_classifier.items():
        summary = summarise_folds(record["folds"])
        entries.append({
            "recipe": recipe.name, "classifier": name, "protocol": protocol, "modalities": list(inputs.modalities),
            "wall_s": round(fusion_seconds + record["seconds"], 2), "n_parameters": record["parameters"],
            "n_rows": len(ids), "feature_width": int(Z_train.shape[1]), **summary, "labels": classes,
            "n_folds": len(folds), "folds": record["folds"],
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


def _score(entry) -> str:
    if entry is None:
        return "—"
    spread = f" ± {100 * entry['accuracy_std']:.1f}" if entry["n_folds"] > 1 else ""
    return f"{100 * entry['accuracy']:.1f}{spread} (UA {100 * entry['ua']:.1f})"


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
             "the audio autoencoder). The confusion matrix is the paper's model under the speaker-independent folds.",
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
        lines += [f"Modalities used: {', '.join(entries[0]['modalities'])} ({branch} branch). "
                  + document.get("branch_notes", {}).get(name, ""), ""]
        protocols = [p for p in PROTOCOLS if any(e["protocol"] == p for e in entries)]
        lines += ["| classifier | paper's claim (accuracy %) | " + " | ".join(PROTOCOL_HEADINGS[p] for p in protocols)
                  + " | wall time (s) | parameters |", "|---" * (4 + len(protocols)) + "|"]
        for classifier in dict.fromkeys(e["classifier"] for e in entries):
            row = {e["protocol"]: e for e in entries if e["classifier"] == classifier}
            claim = paper_claim(recipe, classifier, branch, dataset) if recipe else None
            claimed = f"{100 * claim.accuracy:.2f} ({claim.dataset} {claim.branch}; {claim.source})" if claim else "—"
            wall = sum(e["wall_s"] for e in row.values())
            parameters = max(e["n_parameters"] for e in row.values())
            lines.append(f"| {classifier} | {claimed} | " + " | ".join(_score(row.get(p)) for p in protocols)
                         + f" | {wall:.0f} | {f'{parameters:,}' if parameters else '—'} |")
        lines.append("")
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
            f"  fusion: {recipe.method}{' (audio autoencoder)' if recipe.audio_encoder else ''}; "
            f"classifiers: {classifiers}\n  claims: {claims}")

