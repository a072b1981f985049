"""Fusion methods by name: ``concat``, ``mfa``, ``zebra`` and chains such as ``zebra+mfa``.

Every method is a scikit-learn pipeline that starts with ``BlockConcat`` (per-modality
imputation and standardisation, optional PCA) and continues with the named steps in order.
"""

import inspect

from sklearn.pipeline import Pipeline

from extract.errors import EmofuseError

from .concat import BlockConcat
from .mfa import MarginalFisherAnalysis
from .zebra import ZebraFeatureSelector

STEPS = {"concat": BlockConcat, "mfa": MarginalFisherAnalysis, "zebra": ZebraFeatureSelector}

# Pipeline defaults that differ from the steps' own.  MFA after Yan et al.'s PCA to
# n_samples - n_classes dimensions fits noise on a few hundred training clips: on the
# 8-actor synthetic corpus (speaker folds, RBF SVM on the 7-D fused embedding) UA was 0.20
# with it, 0.50 with PCA to 60 and 0.45 with 90 % of the variance.
PIPELINE_DEFAULTS = {"mfa__pca": 60}


class SpeakerPipeline(Pipeline):
    """A ``Pipeline`` whose ``fit`` takes the speakers and passes them, as ``groups``, to the
    steps whose ``fit`` accepts them (the zebra selector's inner speaker-grouped CV)."""

    def fit(self, X, y=None, groups=None):
        """Fit all steps on ``X`` [shape=(n_samples, n_features)], ``y`` and ``groups``."""
        routed = {
            f"{name}__groups": groups
            for name, step in self.steps
            if groups is not None and "groups" in inspect.signature(step.fit).parameters
        }
        return super().fit(X, y, **routed)

    def fit_transform(self, X, y=None, groups=None):
        """``fit(X, y, groups).transform(X)``."""
        return self.fit(X, y, groups).transform(X)


def parse_method(method: str) -> list:
    """The step names of a method string, ``concat`` first.

    Parameters
    ----------
    method : str
        ``concat``, ``mfa``, ``zebra``, or steps joined by ``+`` (e.g. ``zebra+mfa``);
        ``concat`` is implied first and may only be written first.

    Returns
    -------
    steps : list of str

    Raises
    ------
    EmofuseError
        An unknown or repeated step; the message lists the known ones.
    """
    parts = method.split("+")
    if parts[0] == "concat":
        parts = parts[1:]
    if any(p not in STEPS or p == "concat" for p in parts) or len(set(parts)) != len(parts):
        raise EmofuseError(
            f"unknown fusion method {method!r}; known: {', '.join(STEPS)}, or steps joined by '+' "
            "(concat implied first), e.g. zebra+mfa"
        )
    return ["concat", *parts]


def build_pipeline(method: str, blocks, *, seed: int = 0, **params) -> SpeakerPipeline:
    """An unfitted pipeline for ``method``.

    Parameters
    ----------
    method : str
        See ``parse_method``.
    blocks : list of (str, int)
        Modality blocks of the input columns, for ``BlockConcat``.
    seed : int
        ``random_state`` of every step that has one.
    **params
        Step parameters, either ``step__name`` (scikit-learn style, e.g. ``mfa__k1=7``) or
        a bare ``name`` that exactly one step of the method has (e.g. ``k1=7``).

    Raises
    ------
    EmofuseError
        Unknown method, or a parameter no step (or more than one) has.
    """
    steps = [(name, STEPS[name]()) for name in parse_method(method)]
    pipeline = SpeakerPipeline(steps)
    routed = {f"{name}__random_state": seed for name, step in steps if "random_state" in step.get_params()}
    routed["concat__blocks"] = blocks
    routed |= {key: value for key, value in PIPELINE_DEFAULTS.items() if key.split("__")[0] in dict(steps)}
    for key, value in params.items():
        if "__" not in key:
            owners = [name for name, step in steps if key in step.get_params()]
            if len(owners) != 1:
                raise EmofuseError(
                    f"parameter {key!r} belongs to {' and '.join(owners) or 'no step'} of method {method!r}; "
                    f"write it as step__{key} with step one of {', '.join(n for n, _ in steps)}"
                )
            key = f"{owners[0]}__{key}"
        routed[key] = value
    try:
        return pipeline.set_params(**routed)
    except ValueError as err:
        raise EmofuseError(f"method {method!r}: {err}") from err
