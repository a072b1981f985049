"""The classifiers emofuse evaluates, by name.

Light classifiers (scikit-learn) sit in a Pipeline: mean imputation of missing values
(a clip without one modality), a StandardScaler, then the classifier; the Pipeline fits
both preprocessing steps on the training fold only.  The torch networks of
``classify.networks`` standardise and impute inside their own ``fit`` and are imported
only when one of them is asked for.

``input`` of a spec says what its ``fit`` takes:

* ``"vector"``: a matrix X [shape=(n, d)] of fused (or one modality's) features;
* ``"blocks"``: X = [audio columns | video columns], with ``blocks=(n_audio, n_video)``;
* ``"sequence"``: a list of frame-level feature sequences [shape=(t_i, d)].

``groups`` says whether ``fit`` takes the training speakers (``groups=``) to tune
hyper-parameters by speaker-grouped cross-validation inside the training fold.
"""

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import check_array

from extract.errors import EmofuseError

SVM_C_GRID = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class ClassifierSpec:
    """How to build one named classifier and what its ``fit`` takes."""

    name: str
    description: str
    build: Callable  # build(random_state, blocks=None) -> unfitted estimator
    input: str = "vector"
    groups: bool = False
    light: bool = True
    in_all: bool = True  # part of "all" (False: too costly, run only when named)


def standardised(classifier) -> Pipeline:
    """``classifier`` behind mean imputation and standardisation, both fitted on training data.

    Empty (all-NaN) training columns are kept as zeros so the column count never changes.
    """
    return Pipeline([
        ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("classifier", classifier),
    ])


class GramRbfSVC(ClassifierMixin, BaseEstimator):
    """scikit-learn's ``SVC(kernel="rbf")`` with its kernel matrix from one matrix product.

    libsvm evaluates the RBF kernel one pair of clips at a time, which is most of an SVM's fit
    on a few hundred clips of thousands of columns (660 x 2,289 real-speech clips: 0.37 s of
    CPU; 0.09 s with the kernel computed here).  The model is the same: gamma ``"scale"`` =
    1 / (d * Var(X)) as scikit-learn defines it, K(x, z) = exp(-gamma ||x - z||^2) computed as
    libsvm does (||x||^2 + ||z||^2 - 2 x.z, in float64), libsvm's solver on that kernel;
    decisions equal ``SVC`` 's up to rounding.  A kernel matrix larger than ``max_kernel_mb``
    (n^2 x 8 bytes: about 5,800 training clips at 256 MB) is left to libsvm's own kernel and
    cache.

    Parameters
    ----------
    C : float
    gamma : "scale" or float
    class_weight : None, "balanced" or dict
    max_kernel_mb : float
        Largest kernel matrix computed up front, in MiB.
    random_state : int or None
        As ``SVC`` (unused without probability estimates).
    """

    def __init__(self, C=1.0, gamma="scale", class_weight=None, max_kernel_mb=256, random_state=None):
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.max_kernel_mb = max_kernel_mb
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on ``X`` [shape=(n, d)] and labels ``y`` [shape=(n,)]."""
        X = check_array(X, dtype=np.float64)
        variance = X.var()
        self.gamma_ = (1.0 / (X.shape[1] * variance) if variance != 0 else 1.0) if self.gamma == "scale" \
            else float(self.gamma)
        precomputed = len(X) ** 2 * 8 <= self.max_kernel_mb * 2 ** 20
        self.svc_ = SVC(kernel="precomputed" if precomputed else "rbf", C=self.C, gamma=self.gamma_,
                        class_weight=self.class_weight, random_state=self.random_state)
        self.svc_.fit(self._kernel(X, X) if precomputed else X, y)
        # precomputed: the support vectors' rows, to score new clips against them only
        self.support_rows_ = X[self.svc_.support_] if precomputed else None
        self.n_train_ = len(X)
        self.classes_ = self.svc_.classes_
        return self

    def _kernel(self, X, Z) -> np.ndarray:
        """K(X, Z) [shape=(len(X), len(Z))], float64."""
        distances = (X * X).sum(axis=1)[:, None] + (Z * Z).sum(axis=1)[None, :] - 2.0 * (X @ Z.T)
        return np.exp(-self.gamma_ * np.maximum(distances, 0.0))

    def _svc_input(self, X):
        X = check_array(X, dtype=np.float64)
        if self.support_rows_ is None:
            return X
        # libsvm reads only the support vectors' columns of a precomputed kernel
        K = np.zeros((len(X), self.n_train_))
        K[:, self.svc_.support_] = self._kernel(X, self.support_rows_)
        return K

    def predict(self, X):
        """Classes of ``X`` [shape=(n, d)]."""
        return self.svc_.predict(self._svc_input(X))

    def decision_function(self, X):
        """One-vs-rest decision values of ``X`` [shape=(n, n_classes)], as ``SVC`` gives them."""
        return self.svc_.decision_function(self._svc_input(X))


def _rbf_svm(random_state, blocks=None):
    return standardised(GramRbfSVC(C=1.0, gamma="scale", class_weight="balanced", random_state=random_state))


class SpeakerTunedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose hyper-parameters are chosen by speaker-grouped CV inside ``fit``.

    ``GridSearchCV`` over ``param_grid`` with ``GroupKFold`` on the training speakers
    (``fit(groups=)``), balanced accuracy (UA) as the score, ``min(max_splits, n_speakers)``
    folds, then a refit on all training clips.

    Parameters
    ----------
    estimator : scikit-learn classifier
    param_grid : dict
    max_splits : int
        Inner folds when there are enough training speakers (at least 2 are needed).
    """

    def __init__(self, estimator, param_grid, max_splits=3):
        self.estimator = estimator
        self.param_grid = param_grid
        self.max_splits = max_splits

    def fit(self, X, y, groups=None):
        """Tune on ``X`` [shape=(n, d)], ``y`` grouped by speaker (``groups``), then refit.

        Raises
        ------
        EmofuseError
            No speakers given, or fewer than 2 training speakers.
        """
        n_speakers = 0 if groups is None else len(np.unique(np.asarray(groups).astype(str)))
        if n_speakers < 2:
            raise EmofuseError(f"svm-tuned chooses C by cross-validation over the training speakers (groups): "
                               f"it needs at least 2, got {n_speakers}")
        search = GridSearchCV(clone(self.estimator), self.param_grid, scoring="balanced_accuracy",
                              cv=GroupKFold(n_splits=min(self.max_splits, n_speakers)))
        search.fit(X, y, groups=groups)
        self.best_estimator_, self.best_params_ = search.best_estimator_, search.best_params_
        self.classes_ = search.best_estimator_.classes_
        return self

    def predict(self, X):
        """Classes of ``X`` [shape=(n, d)] by the tuned estimator."""
        return self.best_estimator_.predict(X)

    def decision_function(self, X):
        """The tuned estimator's decision values for ``X``."""
        return self.best_estimator_.decision_function(X)


def _tuned_svm(random_state, blocks=None):
    # C chosen by speaker-grouped CV over the training speakers (the groups= of fit).
    return SpeakerTunedClassifier(_rbf_svm(random_state), {"classifier__C": list(SVM_C_GRID)})


def _random_forest(random_state, blocks=None):
    # 100 trees: scikit-learn's default and the field's usual forest; 300 cost three times as
    # much (three quarters of an evaluation's fitting time) for 0.9 UA points on real speech.
    return standardised(RandomForestClassifier(n_estimators=100, class_weight="balanced", n_jobs=1,
                                               random_state=random_state))


def _logistic_regression(random_state, blocks=None):
    return standardised(LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000,
                                           random_state=random_state))


def _nearest_neighbours(random_state, blocks=None):
    return standardised(KNeighborsClassifier(n_neighbors=5, weights="distance"))


def _perceptron(random_state, blocks=None):
    return standardised(MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, early_stopping=True,
                                      max_iter=500, random_state=random_state))


def _network(class_name, module="networks", **fixed):
    """A builder of the torch classifier ``classify.<module>.<class_name>(**fixed)``, imported on use."""
    def build(random_state, blocks=None):
        networks = importlib.import_module(f".{module}", __package__)

        params = {"blocks": tuple(blocks)} if blocks is not None else {}
        return getattr(networks, class_name)(random_state=random_state, **fixed, **params)
    return build


CLASSIFIERS = {spec.name: spec for spec in (
    ClassifierSpec("svm", "RBF support vector machine, C=1, class-balanced", _rbf_svm),
    ClassifierSpec("rf", "random forest, 100 trees, class-balanced", _random_forest),
    ClassifierSpec("logreg", "multinomial logistic regression, L2, class-balanced", _logistic_regression),
    ClassifierSpec("knn", "k-nearest neighbours, k=5, distance-weighted", _nearest_neighbours),
    ClassifierSpec("mlp", "multilayer perceptron, one hidden layer of 128, early stopping", _perceptron),
    ClassifierSpec("svm-tuned", f"RBF SVM, C in {SVM_C_GRID} by speaker-grouped CV (at most 3 folds) over "
                   "the training speakers",
                   _tuned_svm, groups=True, light=False),
    ClassifierSpec("cnn1d", "FERCNN 1-D CNN on the feature vector (DV-EmotionNet; torch)",
                   _network("FerCnnClassifier"), light=False),
    ClassifierSpec("bilstm_sa", "BiLSTM + multi-head self-attention on frame sequences (Kirar et al.; torch)",
                   _network("BiLstmAttentionClassifier"), input="sequence", light=False),
    ClassifierSpec("bilstm_sa_features", "BiLSTM + self-attention on the fused vector cut into steps "
                   "(Kirar et al.; torch)", _network("FeatureSequenceClassifier", "feature_sequence", attention=True),
                   light=False),
    ClassifierSpec("bilstm_features", "plain BiLSTM on the fused vector cut into steps (Kirar et al.'s baseline; "
                   "torch)", _network("FeatureSequenceClassifier", "feature_sequence", attention=False), light=False),
    ClassifierSpec("attention_fusion", "attention-weighted audio and video encodings (Mamieva et al.; torch)",
                   _network("AttentionFusionClassifier"), input="blocks", light=False),
    ClassifierSpec("omsn", "OMSN-ER: per-modality BiLSTM maps, dense residual fusion, self-attention CNN "
                   "(Patil et al.; torch)", _network("OmsnClassifier", "omsn"), input="sequence", light=False),
    ClassifierSpec("omsn-mgo", "omsn with its learning rate chosen by the mountain gazelle optimiser inside the "
                   "training speakers (15 candidates x 2 inner folds)", _network("mgo_tuned_omsn", "omsn"),
                   input="sequence", groups=True, light=False, in_all=False),
)}


def parse_classifiers(spec) -> list:
    """Classifier names from ``"all"``, ``"light"``, a comma list, or a list of names.

    Parameters
    ----------
    spec : str or sequence of str
        ``"all"`` (every registered classifier but ``omsn-mgo``, whose 30 network trainings
        per fold run only when it is named), ``"light"`` (svm, rf, logreg, knn, mlp),
        ``"svm,rf"``, or ``["svm", "rf"]``.

    Returns
    -------
    names : list of str
        Known names, in the order given, without repeats.

    Raises
    ------
    EmofuseError
        An unknown name (the message lists the known ones) or an empty request.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    expanded = []
    for name in (n.strip() for n in names if n.strip()):
        if name == "all":
            expanded += [n for n, s in CLASSIFIERS.items() if s.in_all]
        elif name == "light":
            expanded += [n for n, s in CLASSIFIERS.items() if s.light]
        elif name in CLASSIFIERS:
            expanded.append(name)
        else:
            raise EmofuseError(f"unknown classifier {name!r}; known: all, light, {', '.join(CLASSIFIERS)}")
    if not expanded:
        raise EmofuseError(f"no classifier given; known: all, light, {', '.join(CLASSIFIERS)}")
    return list(dict.fromkeys(expanded))


def make_classifier(name: str, *, random_state: int = 0, blocks=None):
    """A fresh, unfitted estimator for the registered classifier ``name``.

    Parameters
    ----------
    name : str
        A key of ``CLASSIFIERS``.
    random_state : int
        Seed of every random part (forest, MLP and network weights, SVM tie-breaking).
    blocks : (int, int), optional
        Audio and video column counts; required by ``attention_fusion``, ignored otherwise.

    Returns
    -------
    estimator : scikit-learn classifier
    """
    spec = CLASSIFIERS.get(name)
    if spec is None:
        raise EmofuseError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}")
    if spec.input == "blocks" and blocks is None:
        raise EmofuseError(f"classifier {name!r} needs blocks=(n_audio_columns, n_video_columns)")
    return spec.build(random_state, blocks) if spec.input == "blocks" else spec.build(random_state)
