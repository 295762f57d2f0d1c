"""Watchlists: named, versioned lists of documents, persons, plates and containers.

``WatchlistRegistry.replace(name, version, entries, source)`` swaps one list in
atomically after validating every entry (nothing changes when one is bad). Files
(CSV or JSON) are loaded through it now; the hub's signed downlink calls the same
method later. Matching is pure and uses normalised keys:

| kind      | entry fields                                 | matched against                         |
|-----------|----------------------------------------------|-----------------------------------------|
| document  | ``number`` (+ optional ``country``)          | MRZ document number (+ issuing state)   |
| person    | ``name`` and ``birth_date`` (YYYY-MM-DD)     | MRZ surname + given names, birth date   |
| plate     | ``plate``                                    | plate read, Cyrillic look-alikes folded |
| container | ``container``                                | ISO 6346 code read or declared          |
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from edge.lanes.errors import RulesError

Kind = Literal["document", "person", "plate", "container"]
KINDS: tuple[str, ...] = ("document", "person", "plate", "container")

# Cyrillic letters used on plates and their Latin look-alikes (GOST R 50577).
_CYR_TO_LAT = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


def norm_plate(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper().translate(_CYR_TO_LAT))


def norm_code(text: str) -> str:
    """Document numbers and container codes: upper case, no spaces, dashes or MRZ fillers."""
    return re.sub(r"[\s<\-]", "", text.upper())


def norm_name(text: str) -> str:
    """Names compared as the sorted set of their words (order and punctuation do not matter)."""
    words = re.findall(r"[^\W\d_]+", text.upper().replace("<", " "))
    return " ".join(sorted(set(words)))


@dataclass(frozen=True)
class Entry:
    list_name: str
    list_version: str
    entry_id: str
    kind: str
    key: str  # normalised match key
    label: str  # what a person reads: "document L898902C3", "ERIKSSON ANNA MARIA 1974-08-12"
    reason: str = ""

    @property
    def ref(self) -> str:
        return f"{self.list_name}@{self.list_version}#{self.entry_id}"


@dataclass(frozen=True)
class WatchlistInfo:
    name: str
    version: str
    source: str
    entries: int
    sha256: str
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source, "entries": self.entries,
                "sha256": self.sha256, "by_kind": dict(self.by_kind)}


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def parse_entry(name: str, version: str, index: int, raw: Mapping[str, Any]) -> Entry:
    """One validated entry; ``RulesError`` says which entry and what is wrong."""
    where = f"watchlist {name!r} entry {index + 1}"
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: expected an object with a kind, got {type(raw).__name__}")
    kind = _text(raw, "kind").lower()
    entry_id = _text(raw, "id") or str(index + 1)
    reason = _text(raw, "reason")
    if kind == "document":
        number = norm_code(_text(raw, "number") or _text(raw, "value"))
        if not re.fullmatch(r"[0-9A-Z]{3,20}", number):
            raise RulesError(f"{where}: document number must be 3-20 letters or digits, got {number!r}")
        country = _text(raw, "country").upper()
        key = f"{number}|{country}" if country else number
        return Entry(name, version, entry_id, kind, key, f"document {number}" + (f" ({country})" if country else ""),
                     reason)
    if kind == "person":
        person = norm_name(_text(raw, "name") or _text(raw, "value"))
        birth = _text(raw, "birth_date")
        if not person:
            raise RulesError(f"{where}: a person entry needs a name")
        try:
            date.fromisoformat(birth)
        except ValueError:
            raise RulesError(f"{where}: birth_date must be YYYY-MM-DD, got {birth!r}") from None
        return Entry(name, version, entry_id, kind, f"{person}|{birth}", f"{person} born {birth}", reason)
    if kind == "plate":
        plate = norm_plate(_text(raw, "plate") or _text(raw, "value"))
        if not 4 <= len(plate) <= 12:
            raise RulesError(f"{where}: plate must have 4-12 letters and digits, got {plate!r}")
        return Entry(name, version, entry_id, kind, plate, f"plate {plate}", reason)
    if kind == "container":
        code = norm_code(_text(raw, "container") or _text(raw, "value"))
        if not re.fullmatch(r"[A-Z]{4}[0-9]{7}", code):
            raise RulesError(f"{where}: container must be an ISO 6346 code like CSQU3054383, got {code!r}")
        return Entry(name, version, entry_id, kind, code, f"container {code}", reason)
    raise RulesError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")


def read_file(path: Path) -> list[dict[str, Any]]:
    """Entries of a CSV (header row: kind,value,birth_date,country,reason,id) or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read watchlist: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesError(f"{path}:{exc.lineno}: watchlist is not valid JSON: {exc.msg}") from exc
        if isinstance(data, dict):
            data = data.get("entries")
        if not isinstance(data, list):
            raise RulesError(f"{path}: a JSON watchlist is a list of entries or {{\"entries\": [...]}}")
        return data
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and "kind" not in rows[0]:
        raise RulesError(f"{path}: the CSV header must name a 'kind' column (kind,value,birth_date,country,reason)")
    return [dict(row) for row in rows]


def content_sha256(entries: Iterable[Mapping[str, Any]]) -> str:
    body = json.dumps(list(entries), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(body).hexdigest()


class WatchlistRegistry:
    """Thread-safe: lists are replaced whole; matching reads an immutable index."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[str, tuple[WatchlistInfo, tuple[Entry, ...]]] = {}
        self._index: dict[tuple[str, str], tuple[Entry, ...]] = {}
        self._listeners: list[Callable[[WatchlistInfo], None]] = []

    def on_change(self, listener: Callable[[WatchlistInfo], None]) -> None:
        """``listener(info)`` is called after every successful ``replace``."""
        self._listeners.append(listener)

    def replace(self, name: str, version: str, entries: Iterable[Mapping[str, Any]], source: str) -> WatchlistInfo:
        """Validate every entry, then swap list ``name`` for this version atomically.

        ``version`` is the publisher's version string (a file's mtime+hash, the hub's
        number); ``source`` says where it came from ("file:/etc/...", "hub"). Raises
        ``RulesError`` naming the first bad entry; the previous version stays in force.
        """
        raw = list(entries)
        parsed = self.validate(name, version, raw)
        by_kind: dict[str, int] = {}
        for e in parsed:
            by_kind[e.kind] = by_kind.get(e.kind, 0) + 1
        info = WatchlistInfo(name, str(version), source, len(parsed), content_sha256(raw), by_kind)
        with self._lock:
            self._lists[name] = (info, parsed)
            self._rebuild()
        for listener in list(self._listeners):
            listener(info)
        return info

    @staticmethod
    def validate(name: str, version: str, entries: Iterable[Mapping[str, Any]]) -> tuple[Entry, ...]:
        """The parsed entries of list ``name``, or ``RulesError`` naming the first bad one; changes nothing."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise RulesError(f"watchlist name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return tuple(parse_entry(name, version, i, e) for i, e in enumerate(entries))

    def remove(self, name: str) -> bool:
        with self._lock:
            found = self._lists.pop(name, None) is not None
            self._rebuild()
        return found

    def load_file(self, path: Path, name: str | None = None) -> WatchlistInfo:
        entries = read_file(path)
        version = content_sha256(entries)[:12]
        try:
            return self.replace(name or path.stem, version, entries, f"file:{path}")
        except RulesError as exc:
            raise RulesError(f"{path}: {exc}") from None

    def lists(self) -> list[WatchlistInfo]:
        with self._lock:
            return [info for info, _ in self._lists.values()]

    def _rebuild(self) -> None:
        index: dict[tuple[str, str], list[Entry]] = {}
        for _, entries in self._lists.values():
            for e in entries:
                index.setdefault((e.kind, e.key), []).append(e)
        self._index = {k: tuple(v) for k, v in index.items()}

    # ------------------------------------------------------------ matching (pure lookups)

    def match(self, kind: str, key: str) -> tuple[Entry, ...]:
        return self._index.get((kind, key), ())

    def match_document(self, number: str, country: str | None) -> tuple[Entry, ...]:
        n = norm_code(number)
        return self.match("document", n) + (self.match("document", f"{n}|{country.upper()}") if country else ())

    def match_person(self, name: str, birth_date: str | None) -> tuple[Entry, ...]:
        if not birth_date:
            return ()
        return self.match("person", f"{norm_name(name)}|{birth_date}")

    def match_plate(self, plate: str) -> tuple[Entry, ...]:
        return self.match("plate", norm_plate(plate))

    def match_container(self, code: str) -> tuple[Entry, ...]:
        return self.match("container", norm_code(code))
