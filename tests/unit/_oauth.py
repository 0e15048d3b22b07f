"""An authorization server and a protected MCP server made of documents, served from memory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from langgraph.store.memory import InMemoryStore

from mcpbridge import UrlPolicy
from mcpbridge._oauth_discovery import OAuthHttp
from mcpbridge.oauth import OAuthFlow, OAuthSettings, StoreClientRegistry, StoreStateStore

MCP = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"
REDIRECT = "https://agents.example.com/oauth/callback"
POLICY = UrlPolicy(allow=["mcp.example.com", "auth.example.com"])


def prm(**changes: Any) -> dict[str, Any]:
    return {"resource": MCP, "authorization_servers": [ISSUER], "scopes_supported": ["mcp:tools"], **changes}


def asm(**changes: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "registration_endpoint": f"{ISSUER}/reg",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": ["openid", "offline_access", "mcp:tools"],
        **changes,
    }


class _Body(httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 65536):
            yield self.data[start : start + 65536]


@dataclass
class Documents:
    """Answers GETs of known URLs with their JSON; POSTs with `posted` answers; records every request."""

    documents: dict[str, Any] = field(default_factory=dict[str, Any])
    posted: dict[str, tuple[int, Any]] = field(default_factory=dict[str, tuple[int, Any]])
    requests: list[httpx2.Request] = field(default_factory=list[httpx2.Request])

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        url = str(request.url.copy_with(query=None))
        if request.method == "POST" and url in self.posted:
            status, body = self.posted[url]
            return httpx2.Response(status, json=body)
        if url in self.documents:  # streamed, as from a socket: the response cap sees each chunk
            return httpx2.Response(200, stream=_Body(json.dumps(self.documents[url]).encode()))
        return httpx2.Response(404)

    def urls(self) -> list[str]:
        return [str(r.url.copy_with(query=None)) for r in self.requests]


def served(prm_doc: Mapping[str, Any] | None = None, asm_doc: Mapping[str, Any] | None = None) -> Documents:
    return Documents(
        documents={
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp": dict(prm_doc or prm()),
            f"{ISSUER}/.well-known/oauth-authorization-server": dict(asm_doc or asm()),
        },
        posted={f"{ISSUER}/reg": (201, {"client_id": "dyn-1", "redirect_uris": [REDIRECT]})},
    )


def http(documents: Documents, policy: UrlPolicy = POLICY) -> OAuthHttp:
    return OAuthHttp(policy, transport=httpx2.MockTransport(documents.handle))


def flow(documents: Documents, store: InMemoryStore | None = None, **options: Any) -> OAuthFlow:
    store = store or InMemoryStore()
    base: dict[str, Any] = {"redirect_uri": REDIRECT, "url_policy": POLICY}
    made = OAuthFlow(
        OAuthSettings(**{**base, **options}),
        states=StoreStateStore(store),
        clients=StoreClientRegistry(store),
    )
    made._http = http(documents, made.settings.url_policy)  # pyright: ignore[reportPrivateUsage]
    return made
