"""Example MCP servers, runnable over stdio or streamable HTTP with ``python -m examples.servers.<name>``."""
