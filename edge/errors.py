"""One exception tree for the runtime; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of the runtime's anticipated errors."""

    exit_code = 1


class ConfigError(EdgeError):
    """The configuration cannot be read or is invalid. Message names file, line and key."""

    exit_code = 2


class StoreError(EdgeError):
    """The evidentiary store cannot be opened, migrated or written."""


class StoreClosed(StoreError):
    """A write was submitted after the store writer stopped."""
