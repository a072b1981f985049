"""A whole emofuse method as one object: store columns -> emotion probabilities.

A ``Candidate`` names a method (modality, fusion method and its parameters, STIP bag of
words, speaker adaptation, classifier); ``FittedModel`` holds every step of one candidate
fitted on some clips: the STIP codebook, the fusion pipeline (imputation, scaling, optional
PCA, zebra selection, MFA projection) and the classifier; a speaker-adaptive model normalises
with statistics of the speaker's enrolment clips.
``SavedModel`` is what ``model.joblib`` holds: the chosen non-adaptive model and, when
adaptive candidates were evaluated, the chosen speaker-adaptive one.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GroupKFold

from extract.errors import EmofuseError
from fusion.methods import build_pipeline
from fusion.run import with_stip_words
from fusion.speaker_norm import ADAPTIVE_LABEL, method_dir_name, speaker_statistics

from .classifiers import CLASSIFIERS, make_classifier
from .frames import SEQUENCE_CONSUMED

SEED = 0
MODEL_FORMAT = 3
"""Version of ``SavedModel``'s content (2: text, STIP codebooks and frame models; 3: the STIP
codebook's class in ``fusion.stip_words``); an older ``model.joblib`` is refitted by
``evaluate`` and refused by ``predict``."""


class FusionKey(NamedTuple):
    """The fusion configuration of candidates: one fusion fit serves all their classifiers."""

    modality: str
    method: str
    params: tuple
    speaker_norm: str
    seed: int
    stip_bow: int

    def pipeline(self, blocks, input_names=None):
        """A fresh, unfitted fusion pipeline of this configuration for input ``blocks``
        (columns named ``input_names``)."""
        return build_pipeline(self.method, blocks, input_names=input_names, seed=self.seed,
                              **thaw_params(self.params))


@dataclass(frozen=True)
class Candidate:
    """One method a selection compares.

    Attributes
    ----------
    modality : {"audio", "video", "text", "fused"}
    method : str
        Fusion method (``fusion.methods.parse_method``), e.g. ``"mfa"``; ``"frames"``
        (``classify.frames.SEQUENCE_METHOD``) for a sequence classifier, which reads the
        modality's frame-level streams and no fusion output.
    params : tuple of (str, value)
        Fusion parameters, sorted by name (``fusion.methods.build_pipeline``).
    classifier : str
        Registered classifier name.
    speaker_norm : {"none", "all", "enrol:K"}
    seed : int
        Seed of the fusion steps, the STIP codebook and the enrolment draw.
    stip_bow : int
        Words of a STIP bag of words fitted on the training clips, which replaces the fixed
        ``stip`` encoding in the video block (``fusion.run.fuse``'s ``stip_bow``); 0: none.
    """

    modality: str
    method: str
    params: tuple
    classifier: str
    speaker_norm: str = "none"
    seed: int = 0
    stip_bow: int = 0

    @property
    def sequence(self) -> bool:
        """Whether its classifier reads frame sequences (method ``frames``, no fusion)."""
        return CLASSIFIERS[self.classifier].input == "sequence"

    @property
    def method_dir(self) -> str:
        """The method's fused-output directory name, e.g. ``mfa-enrol8``."""
        return method_dir_name(self.method, self.speaker_norm)

    def describe(self) -> dict:
        """JSON form: modality, method (directory name), classifier, params, speaker_norm,
        fusion (the method string), seed, ``stip_bow`` when used and, when adaptive, the
        adaptation label."""
        described = {"modality": self.modality, "method": self.method_dir, "classifier": self.classifier,
                     "params": thaw_params(self.params), "speaker_norm": self.speaker_norm, "fusion": self.method,
                     "seed": self.seed}
        return (described | ({"stip_bow": self.stip_bow} if self.stip_bow else {})
                | ({"consumed": SEQUENCE_CONSUMED} if self.sequence else {})
                | ({"adaptation": ADAPTIVE_LABEL} if self.speaker_norm != "none" else {}))

    @classmethod
    def from_description(cls, described: dict):
        """The candidate ``describe`` wrote."""
        return cls(described["modality"], described["fusion"], freeze_params(described["params"]),
                   described["classifier"], described["speaker_norm"], described["seed"],
                   described.get("stip_bow", 0))

    @property
    def fusion_key(self) -> "FusionKey":
        """What its fusion fit depends on (every field but the classifier)."""
        return FusionKey(self.modality, self.method, self.params, self.speaker_norm, self.seed, self.stip_bow)


class FrozenDict(tuple):
    """A dict-valued fusion parameter (e.g. ``concat__pca={"audio": 20}``) as a hashable,
    sorted tuple of (key, value) pairs; ``thaw_params`` gives the dict back."""


def freeze_params(params: dict) -> tuple:
    """Fusion parameters as a sorted, hashable tuple of (name, value); lists become tuples
    and dicts ``FrozenDict``, at any depth."""
    def frozen(value):
        if isinstance(value, dict):
            return FrozenDict(sorted((str(k), frozen(v)) for k, v in value.items()))
        return tuple(frozen(v) for v in value) if isinstance(value, (list, tuple)) else value
    return tuple(sorted((str(k), frozen(v)) for k, v in dict(params).items()))


def thaw_params(params: tuple) -> dict:
    """The keyword arguments ``freeze_params`` froze: its dicts are dicts again."""
    def thawed(value):
        if isinstance(value, FrozenDict):
            return {k: thawed(v) for k, v in value}
        return tuple(thawed(v) for v in value) if isinstance(value, tuple) else value
    return {name: thawed(value) for name, value in params}


def fit_classifier(name: str, Z, y, speakers, *, probabilities: bool = False):
    """Fit the registered classifier ``name`` on fused features ``Z`` [shape=(n, d)].

    ``speakers`` go to ``fit(groups=)`` for classifiers that tune by speaker.  With
    ``probabilities``, a classifier without ``predict_proba`` is calibrated (sigmoid,
    speaker-grouped, at most 3 folds).
    """
    spec = CLASSIFIERS[name]
    estimator = make_classifier(name, random_state=SEED)
    if probabilities and not hasattr(estimator, "predict_proba"):
        n_splits = min(3, len(set(speakers.tolist())))
        if n_splits < 2:
            raise EmofuseError(f"calibrating {name} needs clips of at least 2 speakers")
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", ensemble=False,
                                           cv=list(GroupKFold(n_splits=n_splits).split(Z, y, speakers)))
    return estimator.fit(Z, y, **({"groups": speakers} if spec.groups else {}))


@dataclass
class FittedModel:
    """One candidate with every step fitted, from the store's columns of its modality.

    Attributes
    ----------
    candidate : Candidate
    input_names : list of str
        Store functional columns the model reads, in order.
    blocks : list of [str, int]
        Modality and column count of each block of ``input_names`` (``fusion.run.modality_matrix``).
    fusion : fusion.methods.SpeakerPipeline
        Fitted on the (adapted) training clips.
    estimator : fitted classifier with ``predict_proba``
    labels : list of str
        Emotion classes, in ``predict_proba`` column order.
    n_clips : int
        Clips it was fitted on.
    stip_words : fusion.stip_words.StipBagOfWords or None
        The STIP codebook fitted on the training clips (``candidate.stip_bow``).
    frame_families : dict
        A sequence model's frame-level families and their column counts, in column order
        (``classify.frames.frames_of``); it has no fusion step and no ``input_names``.
    """

    candidate: Candidate
    input_names: list
    blocks: list
    fusion: object
    estimator: object
    labels: list
    n_clips: int
    stip_words: object = None
    frame_families: dict = field(default_factory=dict)

    @property
    def adaptive(self) -> bool:
        """Whether inputs must be normalised with the speaker's own statistics."""
        return self.candidate.speaker_norm != "none"

    @property
    def modalities(self) -> list:
        """The modalities a clip must carry: ``audio``, ``video``, ``text``, in block order."""
        return [modality for modality, _ in self.blocks]

    def inputs(self, X, stip_points=None) -> np.ndarray:
        """The fusion input of clips: store columns X [shape=(n, len(input_names))] and, for
        a STIP bag-of-words model, each clip's STIP descriptors (list of [shape=(n_i, 48)])
        whose word histograms join the video block [shape=(n, len(input_names) + n_words)]."""
        X = np.asarray(X, dtype=np.float64)
        if self.stip_words is None:
            return X
        if stip_points is None or len(stip_points) != len(X):
            raise EmofuseError("this model encodes STIP points with its codebook: give each clip's STIP points")
        histograms = self.stip_words.transform(list(stip_points))
        return with_stip_words((X, self.input_names, self.blocks), histograms)[0]

    def transform(self, X, enrolment=None) -> np.ndarray:
        """The classifier's input for clips X [shape=(n, d)], as ``inputs`` returns them (a
        sequence model: the clips' frame sequences, unchanged).

        ``enrolment`` [shape=(m, d)], as ``inputs`` returns them: clips of the same speaker
        whose statistics normalise ``X`` (required by, and only used by, an adaptive model).
        """
        if self.fusion is None:
            return list(X)
        X = np.asarray(X, dtype=np.float64)
        if self.adaptive:
            if enrolment is None or not len(enrolment):
                raise EmofuseError(f"the {ADAPTIVE_LABEL} model needs enrolment clips of the speaker")
            mean, scale = speaker_statistics(enrolment)
            X = (X - mean) / scale
        return np.asarray(self.fusion.transform(X), dtype=np.float32)

    def predict_proba(self, X, enrolment=None) -> np.ndarray:
        """Per-class probabilities [shape=(n, n_labels)], columns in ``labels`` order, of
        clips X (and ``enrolment``) as ``inputs`` returns them."""
        return self.estimator.predict_proba(self.transform(X, enrolment))

    def predict(self, X, enrolment=None) -> np.ndarray:
        """Labels [shape=(n,)] as evaluated: the classifier's own predictions (see ``scored``)."""
        return self.scored.predict(self.transform(X, enrolment))

    def predict_with_proba(self, X, enrolment=None) -> tuple:
        """``predict`` and ``predict_proba`` from one pass through the fitted steps."""
        Z = self.transform(X, enrolment)
        return self.scored.predict(Z), self.estimator.predict_proba(Z)

    @property
    def scored(self):
        """The classifier that was scored.  For one calibrated only to give probabilities (an
        SVM), the classifier fitted on all clips inside the calibration, whose ranking the
        calibrated probabilities may not keep."""
        if isinstance(self.estimator, CalibratedClassifierCV):
            return self.estimator.calibrated_classifiers_[0].estimator
        return self.estimator


@dataclass
class SavedModel:
    """The content of ``model.joblib``.

    Attributes
    ----------
    dataset : str
    feature_config : dict
        The store's feature configuration (prediction extracts new files with it).
    config_hash : str
    variants : dict
        ``"none"`` -> the chosen non-adaptive ``FittedModel``; ``"adaptive"`` -> the chosen
        speaker-adaptive one, when adaptive candidates were evaluated.
    selection : dict
        Per variant: the chosen candidate, its inner UA, ``how`` and ``key`` (a digest of
        what the choice depended on; an unchanged key skips refitting that variant).
    format : int
        ``MODEL_FORMAT`` of the code that wrote it.
    """

    dataset: str
    feature_config: dict
    config_hash: str
    variants: dict
    selection: dict = field(default_factory=dict)
    format: int = MODEL_FORMAT

    @property
    def current(self) -> bool:
        """Whether it was written in this version's ``MODEL_FORMAT`` (an older pickle lacks
        the attribute, or holds another number)."""
        return vars(self).get("format") == MODEL_FORMAT

    @classmethod
    def read(cls, path):
        """The model in ``path`` (a ``model.joblib``), or None when it is not a ``SavedModel``
        of this ``MODEL_FORMAT``, including an older one holding a class that has moved since
        (which cannot be unpickled)."""
        try:
            model = joblib.load(path)
        except (AttributeError, ImportError):
            return None
        return model if isinstance(model, cls) and model.current else None

    def variant(self, enrolment: bool):
        """(model, note): the adaptive model when enrolment clips are given and it exists,
        else the non-adaptive one; ``note`` says which was used and why (or is None)."""
        if enrolment and "adaptive" in self.variants:
            return self.variants["adaptive"], None
        if enrolment:
            return self.variants["none"], ("this model has no speaker-adaptive variant; the enrolment clips "
                                           "are not used (non-adaptive model)")
        if "adaptive" in self.variants:
            return self.variants["none"], ("no --enrol clips: using the non-adaptive model, not the "
                                           f"{ADAPTIVE_LABEL} one")
        return self.variants["none"], None
