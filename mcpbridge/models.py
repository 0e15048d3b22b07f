"""Deprecated: the chat models moved to `mcpbridge.testing`; this alias goes in the next release."""

from mcpbridge._deprecation import moved

__getattr__ = moved(
    "mcpbridge.models",
    dict.fromkeys(("MODEL_ENV", "OfflineChatModel", "load_chat_model"), "mcpbridge.testing"),
)
