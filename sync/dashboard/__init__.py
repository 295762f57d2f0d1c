"""The hub's ops dashboard: every edge's state, live alerts across sites, search, session detail.

``create_app(hub_db, users_file)`` builds the FastAPI app; ``serve(app, "HOST:PORT")``
runs it (in a background thread, or in the foreground with ``.run()``).
"""

from sync.dashboard.app import create_app
from sync.dashboard.server import DashboardServer, serve

__all__ = ["DashboardServer", "create_app", "serve"]
