"""The edge's side of the signed downlink: verify, apply, audit, acknowledge.

Documents arrive on the publisher's MQTT connection (``sync.publisher``
``DownlinkHandler``). ``sync.downlink_store.DownlinkStore`` verifies the
signature, the target and the version and records the document (or the
rejection with its reason); then a watchlist goes to the lanes' registry
(``edge.lanes.watchlist.WatchlistRegistry.replace``). Every application and
every rejection is also an ``audit`` event in the evidentiary store, so the hub
sees them too. Nothing unsigned, tampered or older than the active version is
ever applied.

A ``config`` document changes one named group of settings while the edge runs;
the edge applies only the names it has a ``ConfigTarget`` for and rejects any
other (``malformed``: "no setting named ..."), so "applied" in the audit always
means applied. ``detection`` (``DetectionThresholds``) sets the detector's score
thresholds: body ``{"conf": 0.3, "class_conf": {"weapon": 0.15}}``, both
optional; what it leaves out keeps the edge's own ``detector`` config. Central
ops can raise sensitivity for a class at every checkpoint at once, and no one
at the booth can quietly lower it again (the local file only sets the default).

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


class ConfigTarget(Protocol):
    def validate(self, body: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` saying what is wrong; change nothing."""

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Put ``body`` in force; returns what to record in the audit event."""


class DetectionThresholds:
    """The ``detection`` config document: score thresholds of a running detector."""

    KEYS = frozenset({"conf", "class_conf"})

    def __init__(self, detector: Any, conf: float, class_conf: Mapping[str, float]) -> None:
        self.detector = detector
        self.base_conf, self.base_class_conf = conf, dict(class_conf)  # the edge's own config file

    def _settings(self, body: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        extra = sorted(set(body) - self.KEYS)
        if extra:
            raise ValueError(f"unknown detection setting(s) {extra}; known: {sorted(self.KEYS)}")
        overrides = body.get("class_conf", {})
        if not isinstance(overrides, Mapping):
            raise ValueError("class_conf must be an object of class name to threshold")
        return body.get("conf", self.base_conf), {**self.base_class_conf, **overrides}

    def validate(self, body: Mapping[str, Any]) -> None:
        self.detector.thresholds_for(*self._settings(body))

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        before = self.detector.thresholds
        after = self.detector.set_thresholds(*self._settings(body))
        changed = {name: [before[name], value] for name, value in after.items() if before[name] != value}
        log.warning("downlink: detection thresholds now %s", after)
        return {"thresholds": after, "changed": changed}


class EdgeDownlink:
    def __init__(
        self,
        store: DownlinkStore,
        audit: Audit,
        watchlists: WatchlistRegistry | None = None,
        configs: Mapping[str, ConfigTarget] | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.watchlists = watchlists
        self.configs = dict(configs or {})

    def load_active(self) -> None:
        """At start: put every active watchlist and config back in force (they live in memory)."""
        active_versions = self.store.active_versions()
        for name in active_versions.get("config", {}):
            target, active = self.configs.get(name), self.store.active("config", name)
            if target is None or active is None:
                continue
            try:
                target.apply(active["body"])
            except Exception as exc:
                log.error("downlink: active config %s v%s not applied: %s", name, active["version"], exc)
        if self.watchlists is None:
            return
        for name in active_versions.get("watchlist", {}):
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
        if ack["kind"] == "config" and active is not None:
            try:
                detail.update(self.configs[ack["name"]].apply(active["body"]))
            except Exception as exc:  # validated before it became active, yet refused: say so everywhere
                ack = dict(ack, status="rejected", reason="malformed", detail=f"the edge could not apply it: {exc}")
                self.audit("downlink.rejected", target, dict(detail, reason="malformed", detail=ack["detail"]))
                return ack
        self.audit("downlink.applied", target, detail)
        return ack

    def _check(self, doc: VerifiedDownlink) -> None:
        """Before a signed document becomes active: the lanes or the setting must accept it (else rejected)."""
        if doc.kind == "watchlist" and self.watchlists is not None:
            self.watchlists.validate(doc.name, str(doc.version), registry_entries(doc.body.get("entries", [])))
        if doc.kind == "config":
            target = self.configs.get(doc.name)
            if target is None:
                known = ", ".join(sorted(self.configs)) or "none"
                raise ValueError(f"no setting named {doc.name!r} on this edge (known: {known})")
            target.validate(doc.body)

    def status(self) -> dict[str, Any]:
        return self.store.active_versions()


def open_edge_downlink(
    cfg: Any,
    edge_id: str,
    audit: Audit,
    watchlists: WatchlistRegistry | None = None,
    configs: Mapping[str, ConfigTarget] | None = None,
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
    handler = EdgeDownlink(store, audit, watchlists, configs)
    handler.load_active()
    return handler
