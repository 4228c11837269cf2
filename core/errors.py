"""One small exception hierarchy. Every message names the file (or value) and the problem."""


class KwsError(Exception):
    """Base class of every error kwsgui reports to a user."""


class AudioError(KwsError):
    """A wav file or audio device could not be read or written."""


class ModelFormatError(KwsError):
    """A model file is malformed, truncated, of an unknown version or unsupported."""


class ModelImportError(KwsError):
    """A foreign model (ONNX, ELL) uses something we cannot translate."""


class CompileError(KwsError):
    """The compiler cannot lower, build or export a graph."""


class DataError(KwsError):
    """A list, dataset or category file is unusable."""
