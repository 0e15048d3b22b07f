from __future__ import annotations

import anyio
import pytest

from mcpbridge import OAuthError, UrlPolicy
from mcpbridge._oauth_discovery import discover

from ._oauth import ISSUER, MCP, asm, http, prm, served

pytestmark = pytest.mark.anyio


async def test_the_401s_resource_metadata_url_is_read_first() -> None:
    documents = served()
    hinted = "https://mcp.example.com/meta"
    documents.documents[hinted] = prm(scopes_supported=["hinted"])
    header = f'Bearer error="invalid_token", resource_metadata="{hinted}", scope="a b"'
    with anyio.fail_after(10):
        async with http(documents) as client:
            found = await discover(client, MCP, server="linear", www_authenticate=header)
    assert documents.urls()[0] == hinted
    assert found.issuer == ISSUER and found.resource == MCP
    assert found.scope == "a b offline_access"  # the challenge's scope, and refresh tokens where offered


async def test_well_known_urls_without_a_challenge() -> None:
    documents = served()
    with anyio.fail_after(10):
        async with http(documents) as client:
            found = await discover(client, MCP, server="linear")
    assert found.scope == "mcp:tools offline_access"
    assert str(found.metadata.token_endpoint) == f"{ISSUER}/token"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("token_endpoint", "https://10.0.0.5/token"),  # a private address
        ("token_endpoint", "https://169.254.169.254/latest"),  # cloud metadata
        ("registration_endpoint", "http://[::1]:8080/reg"),  # loopback
        ("authorization_endpoint", "http://auth.example.org/auth"),  # http, not allow-listed
    ],
)
async def test_a_document_pointing_an_endpoint_at_a_refused_address_is_refused(
    endpoint: str, url: str
) -> None:
    documents = served(asm_doc=asm(**{endpoint: url}))
    with anyio.fail_after(10):
        async with http(documents) as client:
            with pytest.raises(OAuthError) as caught:
                await discover(client, MCP, server="linear")
    assert caught.value.reason == "url_refused" and caught.value.field == endpoint
    assert caught.value.server == "linear"
    assert not any(u.startswith(url) for u in documents.urls()), "the refused URL was fetched"


async def test_a_resource_metadata_url_at_a_refused_address_is_never_fetched() -> None:
    documents = served()
    header = 'Bearer resource_metadata="http://127.0.0.1:9/meta"'
    with anyio.fail_after(10):
        async with http(documents, UrlPolicy(allow=["mcp.example.com"])) as client:
            with pytest.raises(OAuthError) as caught:
                await discover(client, MCP, server="linear", www_authenticate=header)
    assert caught.value.reason == "url_refused"
    assert documents.urls() == []


@pytest.mark.parametrize(
    ("prm_doc", "asm_doc", "why"),
    [
        (prm(resource="https://other.example.com/mcp"), asm(), "another resource"),
        (prm(), asm(issuer="https://evil.example.com"), "another issuer"),
        (prm(), asm(code_challenge_methods_supported=["plain"]), "PKCE"),
    ],
)
async def test_documents_that_do_not_fit_are_refused(
    prm_doc: dict[str, object], asm_doc: dict[str, object], why: str
) -> None:
    documents = served(prm_doc, asm_doc)
    with anyio.fail_after(10):
        async with http(documents) as client:
            with pytest.raises(OAuthError) as caught:
                await discover(client, MCP, server="linear")
    assert caught.value.reason == "discovery" and why in str(caught.value)


async def test_no_protected_resource_metadata() -> None:
    documents = served()
    documents.documents.clear()
    with anyio.fail_after(10):
        async with http(documents) as client:
            with pytest.raises(OAuthError, match="no protected resource metadata") as caught:
                await discover(client, MCP, server="linear")
    assert caught.value.reason == "discovery"


async def test_an_oversized_document_is_not_read() -> None:
    documents = served()
    documents.documents["https://mcp.example.com/.well-known/oauth-protected-resource/mcp"] = prm(
        padding="x" * 300_000
    )
    with anyio.fail_after(10):
        async with http(documents) as client:
            with pytest.raises(OAuthError, match="could not be read") as caught:
                await discover(client, MCP, server="linear")
    assert caught.value.reason == "discovery"
