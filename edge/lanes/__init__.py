"""Lane sessions, risk rules, watchlists, declarations and decisions (the inspector's domain).

The web terminal uses only what is exported here (LANES_CONTRACT.md). Pure parts:
``session`` (the per-lane state machine), ``rules`` (the table and its engine),
``watchlist`` matching, ``declaration``/``waybill`` parsing, ``view``. ``LaneService``
(``service``) wires them to the store, the runtime and the terminal.
"""

from edge.lanes.errors import DecisionRefused, DeclarationError, LanesError, RulesError, UnknownSession
from edge.lanes.notify import Subscription
from edge.lanes.service import LaneService
from edge.lanes.watchlist import WatchlistRegistry

__all__ = [
    "DecisionRefused",
    "DeclarationError",
    "LaneService",
    "LanesError",
    "RulesError",
    "Subscription",
    "UnknownSession",
    "WatchlistRegistry",
]
