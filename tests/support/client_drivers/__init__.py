"""Drivers of MCP clients written by others, each run inside that client's venv (`tests.support.clients`).

Run as ``.clients/<name>/bin/python -m tests.support.client_drivers.<name>`` from the
repository root, they speak `tests.support.peers.serve_commands` JSON lines:

- ``{"op": "open", "connection": {...}, "mode"?: "auto" | "legacy", "answers"?: {...}}``: connect
  to ``mcpbridge serve`` (``{"transport": "http", "url": ...}`` or ``{"transport": "stdio",
  "command": ..., "args": [...], "env": {...}, "cwd": ...}``). With ``answers`` the client
  handles elicitation, answering each form field by its name from them.
- ``{"op": "call", "tool": ..., "arguments": {...}}``: ``{"texts": [...], "structured": ...,
  "is_error": ..., "asked": [[message, schema], ...]}`` (``structured`` is ``null`` for clients
  that give only text).
- ``{"op": "start", ...}`` (a call, in the background), then ``{"op": "cancel"}``: cancel it as
  the client does; answers ``{"outcome": ...}`` once the call has ended.
- ``{"op": "versions"}``, ``{"op": "exit"}``.

They import only what every client venv has (the standard library, anyio, the client).
"""
