"""Test support shared by the tests, the benchmarks (``bench``) and the soak (``tests/soak``).

- `tests.support.processes`: free ports, child processes stopped by their handles, and
  `demo_servers` (the Agent Server serving ``langgraph.json`` beside an HTTP echo server).
- `tests.support.servers`: MCP servers for tests, run as ``python -m tests.support.servers.<name>``
  from the repository root: `echo` (records every call it gets) and `hostile` (misbehaves).
  `tests.support.servers.common` holds their knobs, all environment variables: ``MCPBRIDGE_RECORD``,
  ``MCPBRIDGE_RECORD_EVENTS``, ``MCPBRIDGE_JSON_RESPONSE``, ``MCPBRIDGE_IDENTITY_SECRET`` and
  ``MCPBRIDGE_IDENTITY_AUDIENCE``.
- `tests.support.peers`: throw-away venvs for clients written by others, and the JSON-lines pipe
  to the driver that runs in each (the benchmarks' peers, the clients of ``mcpbridge serve``).
- `tests.support.oidc`: a headless user logging in at the authorization server that
  `examples.oauth_servers` starts, and a Client ID Metadata Document served over TLS.
- `tests.support.clients`: the MCP clients ``mcpbridge serve`` is tested with, installed once
  into ``.clients/``; `tests.support.client_drivers` drives each from inside its venv.

The example agent (``examples/agent.py``) runs ``mcpbridge.testing.echo`` over stdio unless
``MCPBRIDGE_EXAMPLE_SERVER`` names another module; `demo_servers` names the recording echo server.
Shipped code (``mcpbridge``) and ``examples`` never import this package.
"""
