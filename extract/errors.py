"""The one error family emofuse raises for bad input, so callers can catch it apart from bugs."""


class EmofuseError(Exception):
    """Base class: bad input or configuration, with a message meant for the user."""


class CorpusError(EmofuseError):
    """A corpus folder, manifest or file name that cannot be used."""


class DecodeError(EmofuseError):
    """An audio or video file that cannot be decoded; the message names the file."""
