"""Test doubles for agents built with mcpbridge, usable outside this repository.

`OfflineChatModel` is a deterministic chat model that calls the tools a message
names; `load_chat_model` returns a real model when ``MCPBRIDGE_MODEL`` is set.
"""

from mcpbridge.testing._model import MODEL_ENV, OfflineChatModel, load_chat_model

__all__ = ["MODEL_ENV", "OfflineChatModel", "load_chat_model"]
