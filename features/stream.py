"""The one container every feature family returns for a clip's frame-level sequence."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stream:
    """A frame-level feature sequence of one clip.

    Attributes
    ----------
    values : np.ndarray [shape=(t, d), dtype=float32]
        One row per frame, one column per named feature.  NaN marks a frame where the
        feature is undefined (e.g. F0 of an unvoiced frame).
    names : list of str, length d
        Column names, e.g. ``mfcc_3``, ``mfcc_3_delta``.
    frame_rate : float
        Frames per second of ``values`` (Hz).
    unit : str
        Unit of the values, e.g. ``"Hz"``, ``"dB"``, ``""`` for dimensionless.
    meta : dict
        Extra attributes to store beside the sequence (JSON-serialisable).
    """

    values: np.ndarray
    names: list
    frame_rate: float
    unit: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"Stream values must be (t, {len(self.names)}), got {self.values.shape}"
            )
