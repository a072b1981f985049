"""Fusion methods by name: ``concat``, ``mfa``, ``zebra``, ``stack`` and chains such as
``zebra+mfa``.

Every method is a scikit-learn pipeline that starts with ``BlockConcat`` (per-modality
imputation and standardisation, optional PCA) and continues with the named steps in order.
``mfa`` is ``MarginalFisherAnalysisCV``: its hyper-parameters are chosen inside the training
speakers of each fold; ``zebra`` selects feature groups by the same kind of inner folds;
``stack`` is ``FamilyStacking``: one classifier per modality block (or per family, with
``stack__families``), its penalty chosen by those inner folds, fused by their out-of-fold
class log-probabilities.
Fitted on a DataFrame, the steps before the last pass DataFrames with their output names
on, so that zebra can group columns and MFA find the modality blocks by name
(``<block>__<input name>``); fitted on an array, every column is its own zebra group and
MFA sees one block.
"""

import inspect

import pandas as pd
from sklearn.pipeline import Pipeline

from extract.errors import EmofuseError

from .concat import BlockConcat
from .mfa import MarginalFisherAnalysisCV
from .stacking import FamilyStacking
from .zebra import ZebraFeatureSelector

STEPS = {"concat": BlockConcat, "mfa": MarginalFisherAnalysisCV, "zebra": ZebraFeatureSelector,
         "stack": FamilyStacking}


class SpeakerPipeline(Pipeline):
    """A ``Pipeline`` whose ``fit`` takes the speakers and passes them, as ``groups``, to the
    steps whose ``fit`` accepts them (the inner speaker-grouped CV of zebra and of MFA), and
    that keeps the column names of a DataFrame between steps.

    ``input_names`` (list of str, optional) names the columns of an array ``X``, which is then
    read as a DataFrame with those columns, so callers can pass plain arrays.  A pipeline of
    ``BlockConcat`` alone keeps the array: no later step reads the names (its output names come
    from ``get_feature_names_out(input_names)``), and validating a DataFrame of 2,289 real-speech
    columns column by column cost a third of a fold's fit and transforms (0.12 -> 0.08 s of CPU).
    """

    def __init__(self, steps, *, input_names=None, transform_input=None, memory=None, verbose=False):
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.input_names = input_names

    def _framed(self, X):
        """``X`` as a DataFrame with ``input_names`` when it is an array and names are known."""
        if self.input_names is None or hasattr(X, "columns") or len(self.steps) == 1:
            return X
        return pd.DataFrame(X, columns=list(self.input_names))

    def fit(self, X, y=None, groups=None):
        """Fit all steps on ``X`` [shape=(n_samples, n_features)], an array or a DataFrame,
        ``y`` and ``groups``."""
        X = self._framed(X)
        for _, step in self.steps[:-1]:
            step.set_output(transform="pandas" if hasattr(X, "columns") else "default")
        routed = {
            f"{name}__groups": groups
            for name, step in self.steps
            if groups is not None and "groups" in inspect.signature(step.fit).parameters
        }
        return super().fit(X, y, **routed)

    def fit_transform(self, X, y=None, groups=None):
        """``fit(X, y, groups).transform(X)``."""
        return self.fit(X, y, groups).transform(X)

    def transform(self, X, **params):
        """Apply every step to ``X`` (an array is named by ``input_names``)."""
        return super().transform(self._framed(X), **params)


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


def build_pipeline(method: str, blocks, *, input_names=None, seed: int = 0, **params) -> SpeakerPipeline:
    """An unfitted pipeline for ``method``.

    Parameters
    ----------
    method : str
        See ``parse_method``.
    blocks : list of (str, int)
        Modality blocks of the input columns, for ``BlockConcat``.
    input_names : list of str, optional
        Names of the input columns (the store's), so that zebra groups the columns of one
        frame-level column and MFA finds the modality blocks; without them every column is
        its own zebra group and MFA sees one block.
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
    pipeline = SpeakerPipeline(steps, input_names=None if input_names is None else list(input_names))
    routed = {f"{name}__random_state": seed for name, step in steps if "random_state" in step.get_params()}
    routed["concat__blocks"] = blocks
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
