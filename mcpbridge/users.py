"""Deprecated: user scoping moved to `mcpbridge.scoping`; this alias goes in the next release."""

from mcpbridge._deprecation import moved

__getattr__ = moved(
    "mcpbridge.users",
    {
        **dict.fromkeys(
            ("Rule", "ToolFilter", "UserContext", "has_any_permission", "has_permission", "user_in"),
            "mcpbridge.scoping",
        ),
        "render_server": "mcpbridge._templating",
    },
)
