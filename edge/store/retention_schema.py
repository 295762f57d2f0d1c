"""Migration v5 (retention): indexes that keep retention passes cheap on a year of evidence.

No new columns: what was pruned is on the chain itself (``audit`` events
``retention.prune``), see ``edge/store/retention.py``.
"""

from __future__ import annotations

import sqlite_utils


def apply_v5(db: sqlite_utils.Database, _edge_id: str) -> None:
    db.conn.execute("CREATE INDEX IF NOT EXISTS evidence_created ON evidence(created_at, sha256)")
    db.conn.execute("CREATE INDEX IF NOT EXISTS frames_evidence ON frames(evidence_sha256)")
