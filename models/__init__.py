"""ONNX detector runtime, shipped models and their model card, training recipe.

``models`` never imports ``edge``. The detector plugs into ``edge.pipeline.Analyser``.
"""
