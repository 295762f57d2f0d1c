"""The inspector terminal: a FastAPI app served by the edge box (``edge.web.app.create_app``).

Kept import-light: ``edge.web.accounts`` is used by the CLI without loading the web stack.
"""
