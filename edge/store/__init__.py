"""The evidentiary store: SQLite (WAL, synchronous=FULL), one writer, a hash chain, evidence files."""

from edge.store.evidence import EvidenceRef, EvidenceStore
from edge.store.verify import VerifyReport, verify_store
from edge.store.writer import Store, StoreStats

__all__ = ["EvidenceRef", "EvidenceStore", "Store", "StoreStats", "VerifyReport", "verify_store"]
