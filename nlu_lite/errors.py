"""One exception hierarchy; each class also inherits the builtin it resembles.

Every message says what happened and what to do about it.
"""
from __future__ import annotations


class NluLiteError(Exception):
    """Root of every error nlu_lite raises on purpose."""


class RegistryError(NluLiteError, ValueError):
    """A registry entry is malformed (unknown key, bad value)."""


class UnknownModelError(NluLiteError, KeyError):
    """An alias that no registry entry carries."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnavailableModelError(UnknownModelError):
    """An NLU reference nlu_lite knows but cannot load (a TensorFlow-only model, a static table, a model
    whose source no card names); the message says which model NLU means and why."""


class InputError(NluLiteError, ValueError):
    """predict() or load() was given input it cannot take (wrong type, unknown option, bad value)."""


class MissingDependencyError(NluLiteError, ImportError):
    """An optional dependency is needed: the message names the pip extra."""


class ArtifactNotFoundError(NluLiteError, FileNotFoundError):
    """A model's files are not on disk and could not be fetched."""


class OfflineError(ArtifactNotFoundError):
    """Offline mode is on and the model's files are not in the cache."""


class DownloadError(NluLiteError, OSError):
    """A source failed to deliver a file (network, HTTP status, truncation)."""


class IntegrityError(DownloadError):
    """A downloaded file's size or sha256 differs from the registry's."""


class UnsafeArchiveError(NluLiteError, ValueError):
    """An archive member would land outside the target folder."""


class ConversionError(NluLiteError, ValueError):
    """A checkpoint cannot be turned into an ONNX model."""


class ModelFormatError(ConversionError):
    """An ONNX file that does not have nlu_lite's model interface (not written by nlu_lite.convert)."""


class InferenceError(NluLiteError, RuntimeError):
    """onnxruntime failed to open or run a model; the message names the file and the batch shape."""


class UnsafeCheckpointError(ConversionError):
    """A pickle checkpoint asks for something other than tensor rebuilding."""
