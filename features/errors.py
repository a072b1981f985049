"""The error the feature stage raises for bad input, beside those of ``extract.errors``."""

from extract.errors import EmofuseError


class FeatureError(EmofuseError):
    """A signal, stream or feature parameter that cannot be used; the message names it."""
