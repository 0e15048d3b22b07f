"""Test doubles and a tiny example MCP server, usable outside this repository.

`OfflineChatModel` is a deterministic chat model that calls the tools a message
names; `load_chat_model` returns a real model when ``MCPBRIDGE_MODEL`` is set.
``python -m mcpbridge.testing.echo`` runs the example server (see `mcpbridge.testing.echo`).
"""

from mcpbridge.testing._model import MODEL_ENV, OfflineChatModel, load_chat_model

__all__ = ["MODEL_ENV", "OfflineChatModel", "load_chat_model"]
