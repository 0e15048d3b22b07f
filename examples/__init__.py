"""Examples of mcpbridge: example MCP servers used by the docs and the integration tests."""
