"""One exception tree for the detector runtime.

Every message names the model file, says what is wrong and what to do next, so a
technician reading ``checkpoint doctor`` or the log needs nothing else.
"""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """Base of every error the detector runtime raises."""

    def __init__(self, path: str | Path | None, problem: str, hint: str = "") -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        self.hint = hint
        where = f"model {self.path}: " if self.path else "model: "
        super().__init__(where + problem + (f" ({hint})" if hint else ""))


class ModelNotFound(ModelError):
    """The model file does not exist or cannot be read."""


class ModelCorrupt(ModelError):
    """The file exists but is not a loadable ONNX model (truncated, not ONNX, bad graph)."""


class ModelLayoutError(ModelError):
    """A valid ONNX model whose inputs, outputs or metadata are not a detector we can run."""


class DetectorConfigError(ModelError):
    """The detector options do not fit this model or this machine (unknown class, provider)."""
