"""The edge runtime: config, pipeline, store, evidence, CLI."""

__version__ = "0.1.0"
