"""MCP servers for tests, run over stdio or HTTP with ``python -m tests.support.servers.<name>``."""
