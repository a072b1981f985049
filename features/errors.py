"""The error the feature stage raises for bad input, beside those of ``extract.errors``."""

from extract.errors import EmofuseError


class FeatureError(EmofuseError):
    """A signal, stream or feature parameter that cannot be used; the message names it."""


class WorkerError(EmofuseError):
    """The workers cannot compute clips (emofuse missing on a Dask node, corpus unreadable there,
    workers lost); the message names the cause and the remedy."""
