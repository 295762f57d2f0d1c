"""The edge's side of the signed downlink: verify, apply, audit, acknowledge.

Documents arrive on the publisher's MQTT connection (``sync.publisher``
``DownlinkHandler``). ``sync.downlink_store.DownlinkStore`` verifies the
signature, the target and the version and records the document (or the
rejection with its reason); then a watchlist goes to the lanes' registry
(``edge.lanes.watchlist.WatchlistRegistry.replace``). Every application and
every rejection is also an ``audit`` event in the evidentiary store, so the hub
sees them too. Nothing unsigned, tampered or older than the active version is
ever applied.

Downlink watchlist entries are ``{type, value, reason, source}``; the registry
speaks ``{kind, value, ...}``: ``plate``, ``document`` and ``container`` map
one to one, ``name_dob`` (value ``"NAME|YYYY-MM-DD"``) becomes a ``person``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sync.downlink import VerifiedDownlink
from sync.downlink_store import DownlinkStore

log = logging.getLogger(__name__)

Audit = Callable[[str, str | None, dict[str, Any]], None]


class WatchlistRegistry(Protocol):
    def validate(self, name: str, version: str, entries: Iterable[Mapping[str, Any]]) -> Any: ...

    def replace(self, name: str, version: str, entries: Iterable[Mapping[str, Any]], source: str) -> Any: ...


def registry_entries(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Downlink entries as the lanes' registry reads them."""
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        kind = e.get("type")
        row: dict[str, Any] = {"id": str(i + 1), "reason": e.get("reason", ""), "source": e.get("source", "")}
        if kind == "name_dob":
            name, _, birth = str(e.get("value", "")).rpartition("|")
            row.update(kind="person", name=name, birth_date=birth)
        else:
            row.update(kind=kind, value=e.get("value"))
        out.append(row)
    return out


class EdgeDownlink:
    def __init__(self, store: DownlinkStore, audit: Audit, watchlists: WatchlistRegistry | None = None) -> None:
        self.store = store
        self.audit = audit
        self.watchlists = watchlists

    def load_active(self) -> None:
        """At start: put every active watchlist back into the registry (it lives in memory)."""
        if self.watchlists is None:
            return
        for name in self.store.active_versions().get("watchlist", {}):
            active = self.store.active("watchlist", name)
            if active is None:
                continue
            try:
                self.watchlists.replace(name, str(active["version"]), registry_entries(active["body"]["entries"]),
                                        f"hub:{active['key_id']}")
            except Exception as exc:
                log.error("downlink: active watchlist %s v%s not loaded: %s", name, active["version"], exc)

    def handle(self, topic: str, raw: bytes) -> dict[str, Any] | None:
        if not raw:
            return None  # an empty retained message clears the broker's copy; nothing to apply
        ack = self.store.apply(raw, check=self._check)
        target = f"{ack['kind']}/{ack['name']}" if ack["kind"] and ack["name"] else None
        if ack["status"] == "rejected":
            self.audit("downlink.rejected", target, {"topic": topic[:200], "version": ack["version"],
                                                     "reason": ack["reason"], "detail": ack["detail"]})
            return ack
        if ack["reason"] == "duplicate":
            return ack
        active = self.store.active(ack["kind"], ack["name"])
        detail: dict[str, Any] = {"version": ack["version"]}
        if active is not None:
            detail.update(key_id=active["key_id"], sha256=active["hash"])
        if ack["kind"] == "watchlist" and active is not None and self.watchlists is not None:
            entries = active["body"]["entries"]
            detail["entries"] = len(entries)
            try:
                self.watchlists.replace(ack["name"], str(ack["version"]), registry_entries(entries),
                                        f"hub:{active['key_id']}")
            except Exception as exc:  # signed and stored, but the lanes refuse an entry: say so everywhere
                ack = dict(ack, status="rejected", reason="malformed", detail=f"lane registry refused it: {exc}")
                self.audit("downlink.rejected", target, dict(detail, reason="malformed", detail=ack["detail"]))
                return ack
        self.audit("downlink.applied", target, detail)
        return ack

    def _check(self, doc: VerifiedDownlink) -> None:
        """Before a signed watchlist becomes active: every entry must parse for the lanes (else rejected)."""
        if doc.kind == "watchlist" and self.watchlists is not None:
            self.watchlists.validate(doc.name, str(doc.version), registry_entries(doc.body.get("entries", [])))

    def status(self) -> dict[str, Any]:
        return self.store.active_versions()


def open_edge_downlink(
    cfg: Any, edge_id: str, audit: Audit, watchlists: WatchlistRegistry | None = None
) -> EdgeDownlink | None:
    """The handler for ``sync.downlink`` of the edge config (None when disabled); active lists reloaded."""
    if not cfg.enabled:
        return None
    from edge.errors import ConfigError
    from sync.downlink import KeyFileError, load_trusted_keys
    from sync.downlink_store import DownlinkStoreError

    try:
        store = DownlinkStore(cfg.store, edge_id=edge_id, trusted_keys=load_trusted_keys(cfg.trusted_keys)).open()
    except (KeyFileError, DownlinkStoreError) as exc:
        raise ConfigError(f"sync.downlink: {exc}") from exc
    handler = EdgeDownlink(store, audit, watchlists)
    handler.load_active()
    return handler
