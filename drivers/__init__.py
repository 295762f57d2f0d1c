"""Hardware drivers, chosen by URL scheme.

``drivers`` imports nothing from ``edge``, ``models`` or ``sync``: it is the bottom
of the dependency graph.
"""
