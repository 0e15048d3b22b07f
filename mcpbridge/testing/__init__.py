"""Test doubles and a tiny example MCP server, usable outside this repository.

``python -m mcpbridge.testing.echo`` runs the example server (see `mcpbridge.testing.echo`).
"""
