"""Exceptions raised by myelin.

Every error of the C++ library arrives as one of these, with the library's message, which says
what was expected and where (the file and line of a network file, the path and byte offset of a
data file, the two shapes of a mismatch). Catch :class:`Error` to catch them all.
"""


class Error(Exception):
    """Base of every myelin error."""


class ShapeError(Error, ValueError):
    """An array or tensor whose shape does not fit, e.g. ``model.forward`` given [N, 3, 32, 32]
    for a network that takes [N, 1, 28, 28]. The message names both shapes."""


class ParseError(Error, ValueError):
    """A network file (YAML) that does not parse or build.

    Attributes: ``file``, ``line`` and ``field`` of the problem."""

    file: str = ""
    line: int = 0
    field: str = ""


class DataError(Error):
    """A malformed or missing data file: a truncated bundle, a corrupt safetensors file, an image
    that is no PNG or JPEG, a label out of range.

    Attributes: ``path`` and ``offset`` (the byte offset of the problem, -1 when none applies)."""

    path: str = ""
    offset: int = -1


class UsageError(Error, ValueError):
    """An argument that makes no sense (an unknown solver, a batch larger than the data, no
    weights given)."""


class DeviceError(Error, RuntimeError):
    """A failing device or library call (CUDA, cuDNN, oneDNN); the message names the call."""


class UnsupportedError(Error, RuntimeError):
    """An op with no kernel on the requested device, or a feature this build does not have."""


class DivergedError(Error, ArithmeticError):
    """Training stopped because the loss became NaN or infinite.

    Attribute: ``iteration``, where it happened."""

    iteration: int = 0


__all__ = ["Error", "ShapeError", "ParseError", "DataError", "UsageError", "DeviceError",
           "UnsupportedError", "DivergedError"]
