"""Benchmarks of mcpbridge against what users would pick instead, in one run: ``python -m bench``.

This package's top level imports nothing: ``bench.adapters_driver``,
``bench.langchain_mcp_driver``, ``bench.langchain_mcp_graph`` (served by ``langgraph dev``)
and ``bench._toolnode`` also run in the peers' throw-away venvs
(``langchain-mcp-adapters`` with an ``mcp`` of the 1.x line; ``langchain[mcp]`` with
FastMCP), which have no mcpbridge.
"""
