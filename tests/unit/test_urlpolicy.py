"""The URL policy for user-registered servers: https and public addresses only, unless allow-listed.

No test here opens a connection; only ``localhost`` and ``nonexistent.invalid`` are resolved
(locally, or failing at once), the rest are address literals.
"""

from __future__ import annotations

import re

import anyio
import pytest

from mcpbridge import ConfigError, ServerRefusedError, UrlPolicy

pytestmark = pytest.mark.anyio

PUBLIC = "https://93.184.216.34/mcp"
"""A public address literal: accepted without resolving anything."""


async def refusal(policy: UrlPolicy, url: str, server: str = "notes") -> ServerRefusedError:
    with anyio.fail_after(10):
        with pytest.raises(ServerRefusedError) as caught:
            await policy.check(url, server=server)
    error = caught.value
    assert error.server == server
    assert error.field == "url"
    assert f"MCP server {server!r}" in str(error)
    assert "allow-list" in str(error)  # says what to do
    return error


async def test_a_public_https_address_is_accepted() -> None:
    await UrlPolicy().check(PUBLIC, server="notes")
    await UrlPolicy().check("https://[2606:2800:220:1:248:1893:25c8:1946]:443/mcp", server="notes")


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34:8443/mcp", "https://[2606:2800:220:1:248:1893:25c8:1946]:22/mcp"]
)
async def test_a_public_address_on_another_port_than_443_is_refused(url: str) -> None:
    error = await refusal(UrlPolicy(), url)
    assert "only port 443 is allowed" in str(error)
    assert re.search(r"allow-lists \S+:(8443|22)", str(error))


async def test_http_is_refused() -> None:
    error = await refusal(UrlPolicy(), "http://93.184.216.34/mcp")
    assert "http://" in str(error) and "only https://" in str(error)


async def test_http_is_accepted_when_https_is_not_required() -> None:
    await UrlPolicy(require_https=False).check("http://93.184.216.34/mcp", server="notes")
    await refusal(UrlPolicy(require_https=False), "http://127.0.0.1/mcp")  # still not a private address


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", r"link-local \(cloud metadata\)"),
        ("[fe80::1]", r"link-local \(cloud metadata\)"),
        ("[fd00:ec2::254]", "private"),
        ("[fec0::1]", "site-local"),
        ("[feff:ffff::1]", "site-local"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", r"(private|unspecified)"),
        ("[::]", r"(private|unspecified)"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", r"link-local \(cloud metadata\)"),
        ("[2002:7f00:1::]", "loopback"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", r"(private|non-public|reserved)"),
    ],
)
async def test_non_public_addresses_are_refused_naming_the_kind(host: str, kind: str) -> None:
    error = await refusal(UrlPolicy(), f"https://{host}/mcp")
    assert "points at" in str(error)
    assert re.search(rf"an? {kind} address", str(error)), str(error)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
async def test_numeric_spellings_of_loopback_are_refused(host: str) -> None:
    """Hosts that are not literals but that the resolver reads as 127.0.0.1."""
    error = await refusal(UrlPolicy(resolve_timeout=5), f"https://{host}/mcp")
    assert "does not resolve to public addresses" in str(error)


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal", "metadata"])
async def test_metadata_service_names_are_refused_without_resolving(host: str) -> None:
    error = await refusal(UrlPolicy(resolve_timeout=0.001), f"https://{host}/computeMetadata/v1/")
    assert "cloud metadata service" in str(error)


async def test_a_name_that_resolves_to_loopback_is_refused_without_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = await refusal(UrlPolicy(), "https://localhost/mcp")
    assert "'localhost' does not resolve to public addresses" in str(error)
    assert "127.0.0.1" not in str(error) and "loopback" not in str(error)
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)  # the deployment's log has it


async def test_a_name_that_does_not_resolve_gets_the_same_text_as_a_refused_address() -> None:
    unresolved = await refusal(UrlPolicy(resolve_timeout=5), "https://nonexistent.invalid/mcp")
    loopback = await refusal(UrlPolicy(resolve_timeout=5), "https://localhost/mcp")
    assert str(unresolved).replace("nonexistent.invalid", "localhost") == str(loopback)


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@93.184.216.34/mcp", "https://token@93.184.216.34/mcp", "https://:pw@93.184.216.34/"],
)
async def test_credentials_in_the_url_are_refused(url: str) -> None:
    error = await refusal(UrlPolicy(), url)
    assert "credentials" in str(error)
    assert "pw" not in str(error) and "token" not in str(error)


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/mcp", "/mcp", "93.184.216.34/mcp", "", "https://"])
async def test_urls_that_are_not_absolute_http_are_refused(url: str) -> None:
    await refusal(UrlPolicy(), url)


async def test_the_query_does_not_appear_in_messages() -> None:
    error = await refusal(UrlPolicy(), "https://10.0.0.1/mcp?key=hunter2")
    assert "hunter2" not in str(error)


# --- allow-list ----------------------------------------------------------------------------------------


async def test_an_allow_listed_host_is_admitted_with_http_on_its_ports() -> None:
    policy = UrlPolicy(allow=["127.0.0.1", "127.0.0.1:8765"])
    await policy.check("http://127.0.0.1:8765/mcp", server="notes")
    await policy.check("https://127.0.0.1/mcp", server="notes")
    error = await refusal(policy, "http://127.0.0.1:8766/mcp")  # not that port
    assert "port 8766" in str(error) and "127.0.0.1:8766" in str(error)
    await refusal(policy, "http://127.0.0.2:8765/mcp")  # only that host
    await refusal(policy, "https://10.0.0.1/mcp")


async def test_an_allow_listed_name_is_admitted_without_resolving_it() -> None:
    policy = UrlPolicy(allow=["LocalHost:8000", "[::1]:8000", "mcp.internal"])
    await policy.check("http://localhost:8000/mcp", server="notes")
    await policy.check("http://[::1]:8000/mcp", server="notes")
    await policy.check("https://mcp.internal/mcp", server="notes")  # never resolved: it does not exist
    error = await refusal(policy, "https://mcp.internal:8443/mcp")  # the bare entry means 443 only
    assert "mcp.internal:8443" in str(error)


async def test_a_star_port_admits_every_port_of_the_host() -> None:
    policy = UrlPolicy(allow=["mcp.internal:*", "10.9.0.0/16:*"])
    await policy.check("http://mcp.internal:1/mcp", server="notes")
    await policy.check("http://mcp.internal:65535/mcp", server="notes")
    await policy.check("http://10.9.1.2:22/mcp", server="notes")


async def test_a_network_with_a_port_admits_that_port_only() -> None:
    policy = UrlPolicy(allow=["127.0.0.2/32:8443", "[fd00::]/8:9000", "fd01::/16:9001"])
    await policy.check("http://127.0.0.2:8443/mcp", server="notes")
    await policy.check("http://[fd00::5]:9000/mcp", server="notes")
    await policy.check("http://[fd01::5]:9001/mcp", server="notes")
    error = await refusal(policy, "https://127.0.0.2/mcp")
    assert "port 443" in str(error)
    await refusal(policy, "http://[fd00::5]:9001/mcp")


def test_the_connection_check_admits_only_checked_addresses_and_ports() -> None:
    policy = UrlPolicy(allow=["127.0.0.2/32:8443", "trusted.internal:8000"])
    assert policy.connect_refusal("notes.example", 8443, "127.0.0.2") is None
    assert policy.connect_refusal("notes.example", 443, "93.184.216.34") is None
    assert policy.connect_refusal("trusted.internal", 8000, "10.0.0.1") is None  # trusted by name
    refusals = {
        ("notes.example", 8443, "127.0.0.3"): "loopback",
        ("notes.example", 443, "127.0.0.2"): "port 443",
        ("notes.example", 8443, "93.184.216.34"): "port 8443",
        ("notes.example", 443, "169.254.169.254"): "link-local",
        ("notes.example", 443, "::ffff:10.0.0.1"): "private",
        ("trusted.internal", 8001, "10.0.0.1"): "port 8001",
        ("metadata.google.internal", 443, "93.184.216.34"): "metadata",
    }
    for (host, port, address), rule in refusals.items():
        reason = policy.connect_refusal(host, port, address)
        assert reason is not None and rule in reason, (host, port, address, reason)


async def test_an_allow_listed_network_admits_its_addresses() -> None:
    policy = UrlPolicy(allow=["10.20.0.0/16", "fd00::/8"])
    await policy.check("https://10.20.3.4/mcp", server="notes")
    await policy.check("https://[fd00:ec2::254]/mcp", server="notes")
    error = await refusal(policy, "https://10.21.0.1/mcp")
    assert "private" in str(error)


async def test_an_allow_listed_network_admits_names_resolving_into_it() -> None:
    await UrlPolicy(allow=["127.0.0.0/8", "::1/128"]).check("https://localhost/mcp", server="notes")


async def test_an_allow_listed_network_may_use_http() -> None:
    """Regression: the docstring lets allow-listed networks use http, but only host entries could."""
    policy = UrlPolicy(allow=["10.0.0.0/8:8000", "127.0.0.0/8:8000", "::1/128:8000"])
    await policy.check("http://10.1.2.3:8000/mcp", server="notes")
    await policy.check("http://localhost:8000/mcp", server="notes")  # resolves into the network
    error = await refusal(policy, "http://93.184.216.34/mcp")  # outside it: https still required
    assert "only https://" in str(error)


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.0/33",
        "not-a/network",
        "10.0.0/8x",
        "/8",
        "host:",
        "host:0",
        "host:65536",
        "host:http",
        "[::1",
        "[::1]x",
        ":443",
        "10.0.0.0/8:x",
    ],
)
def test_an_invalid_allow_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        UrlPolicy(allow=[entry])
    assert caught.value.field == "allow"
    assert repr(entry) in str(caught.value)
    assert "10.0.0.0/8" in str(caught.value)  # shows how to write one


def test_policies_compare_by_their_settings() -> None:
    assert UrlPolicy(allow=("a.test:8443",)) == UrlPolicy(allow=("a.test:8443",))
    assert UrlPolicy(allow=("a.test:8443",)) != UrlPolicy(allow=("a.test:8444",))
    assert hash(UrlPolicy(allow=("a.test",))) == hash(UrlPolicy(allow=("a.test",)))
