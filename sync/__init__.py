"""Sync: the event envelope and its schema (hub, outbox publisher and downlink follow).

``sync`` never imports ``edge``.
"""
