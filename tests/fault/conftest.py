"""Fixtures of the fault tests (the rig itself is in faultrig.py)."""

from faultrig import pg_proxy, pg_rig, sqlite_rig  # noqa: F401
