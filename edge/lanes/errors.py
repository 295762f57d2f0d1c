"""The lane domain's exception tree: callers (the web terminal, the CLI) catch these only."""

from __future__ import annotations

from edge.errors import EdgeError


class LanesError(EdgeError):
    """Base of every error raised by ``edge.lanes`` (an ``EdgeError``: the CLI prints it in one line)."""


class DeclarationError(LanesError, ValueError):
    """A declaration is malformed; the message says which field and why, in one line."""


class DecisionRefused(LanesError, PermissionError):
    """A decision, approval or rejection is not allowed: wrong role, wrong state, missing reason."""


class UnknownSession(LanesError, LookupError):
    """No such session (or approval request)."""


class RulesError(LanesError, ValueError):
    """A rules table or a watchlist file is invalid; the message names the file and the entry."""

    exit_code = 2
