"""Benchmarks of mcpbridge against what users would pick instead, in one run: ``python -m bench``.

This package's top level imports nothing: ``bench.adapters_driver`` and
``bench._toolnode`` also run in the throw-away ``langchain-mcp-adapters`` venv,
which has no mcpbridge and an ``mcp`` of the 1.x line.
"""
