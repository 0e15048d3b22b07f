"""Which URLs a user-registered MCP server may have.

A server a user registers makes the deployment send requests on their behalf,
so by default only ``https`` URLs whose host resolves to public addresses are
accepted: loopback, private, link-local (cloud metadata), shared, reserved,
multicast and unspecified addresses are refused, IPv4 and IPv6 alike. A
deployment allow-lists the hosts or networks it trusts (which may then use
``http``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import anyio
import httpx2

from mcpbridge.errors import ConfigError, ServerRefusedError

__all__ = ["UrlPolicy"]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"}
)


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The URLs user-registered servers may use.

    Attributes:
        allow: Hosts (names or addresses) and networks (CIDR) to trust even when they are
            not public; they may use ``http``. Tests allow ``127.0.0.1``.
        require_https: Refuse ``http`` for hosts not allow-listed.
        resolve_timeout: Seconds allowed for resolving a host name.

    Example:
        ```python
        UrlPolicy()  # https and public addresses only
        UrlPolicy(allow=["127.0.0.1", "10.20.0.0/16"])
        ```
    """

    allow: Sequence[str] = ()
    require_https: bool = True
    resolve_timeout: float = 5.0
    _hosts: frozenset[str] = field(init=False, repr=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allow:
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ConfigError(
                        f"allow-list entry {entry!r} is not a network; write it as 10.0.0.0/8", field="allow"
                    ) from None
            else:
                hosts.add(entry.strip("[]").lower())
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_networks", tuple(networks))

    async def check(self, url: str, *, server: str) -> None:
        """Refuse ``url`` unless the policy admits it, resolving its host name.

        Raises:
            ServerRefusedError: The URL is not admitted; the message says why.
        """
        try:
            parsed = httpx2.URL(url)
        except Exception:
            raise self._refused(server, "is not a valid URL") from None
        host = parsed.host.lower()
        if parsed.scheme not in ("http", "https") or not host:
            raise self._refused(server, "must be an absolute https:// URL")
        if parsed.userinfo:
            raise self._refused(server, "must not hold credentials; put them in `headers`")
        if host in self._hosts:
            return  # allow-listed by name: any scheme, any address
        if host in _METADATA_HOSTS:
            raise self._refused(server, f"points at {host}, a cloud metadata service")
        addresses = await self._addresses(host, parsed.port, server=server)
        if all(any(a in network for network in self._networks) for a in addresses):
            return  # every address is in an allow-listed network: any scheme
        if parsed.scheme != "https" and self.require_https:
            raise self._refused(server, f"uses {parsed.scheme}://; only https:// is allowed")
        for address in addresses:
            if any(address in network for network in self._networks):
                continue
            kind = _forbidden_kind(address)
            if kind is not None:
                shown = host if host == str(address) else f"{host} (which resolves to {address})"
                raise self._refused(server, f"points at {shown}, a {kind} address")

    async def _addresses(self, host: str, port: int | None, *, server: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            with anyio.fail_after(self.resolve_timeout):
                infos = await anyio.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise self._refused(
                server, f"host {host!r} did not resolve within {self.resolve_timeout:g}s"
            ) from None
        except OSError as exc:
            raise self._refused(server, f"host {host!r} does not resolve ({exc.strerror or exc})") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            addresses.append(address)
        return addresses

    def _refused(self, server: str, why: str) -> ServerRefusedError:
        return ServerRefusedError(
            f"MCP server {server!r}: its URL {why}; register a public https:// server, "
            "or ask the deployment to allow-list the host",
            server=server,
            field="url",
        )


def _forbidden_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return _forbidden_kind(mapped)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved or not address.is_global:
        return "non-public"
    return None
