"""Which URLs a user-registered MCP server may have, and which addresses its connections may reach.

A server a user registers makes the deployment send requests on their behalf,
so by default only ``https`` URLs on port 443 whose host resolves to public
addresses are accepted: loopback, private, link-local (cloud metadata), shared,
reserved, multicast and unspecified addresses are refused, IPv4 and IPv6 alike.
A deployment allow-lists the hosts or networks it trusts (which may then use
``http``), each on the ports it names.

The check at registration (`UrlPolicy.check`) is not enough on its own: a name
may resolve to a public address when checked and to a refused one when the
HTTP client connects (DNS rebinding). Servers given a policy (every server
`RegisteredServers` builds) therefore connect through a network backend that
resolves once per connection, asks `UrlPolicy.connect_refusal` about every
address, and connects only to an admitted one.

Allow-list entries:

- ``host`` or ``address``: that host, on port 443 only;
- ``host:port``, ``[v6 address]:port``: that host on that port (an entry per port);
- ``network/len``, ``network/len:port`` (``[v6]/len:port`` too): every address of the network,
  on port 443 or on the given port;
- ``*`` as the port (``host:*``): every port of that host or network. Use it only for a host whose
  every port the deployment would let any user reach.

A host allow-listed by name is trusted whatever it resolves to (the deployment
trusts its DNS); a network entry is checked against every resolved address.

Refusals name the rule and the field, never a resolved address (only an
address the user wrote): what a name resolves to is logged for the deployment.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import anyio
import httpx2

from mcpbridge.errors import ConfigError, ServerRefusedError

__all__ = ["UrlPolicy"]

logger = logging.getLogger("mcpbridge")

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Ports: TypeAlias = frozenset[int] | None
"""The ports an allow-list entry admits; ``None``: every port (``host:*``)."""

HTTPS_PORT: Final = 443
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_ENTRY_SYNTAX: Final = (
    "write a host (example.com, 10.0.0.5, [fd00::5]), a network (10.0.0.0/8), "
    "optionally with :port or :* (example.com:8443, [fd00::5]:8443, 10.0.0.0/8:8443)"
)

_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"}
)


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The URLs user-registered servers may use, and the addresses their connections may reach.

    Attributes:
        allow: Hosts (names or addresses) and networks (CIDR) to trust even when they are
            not public, each with the ports it may use (443 unless the entry names one,
            ``host:port``, or ``host:*`` for all); they may use ``http``. Tests allow
            ``127.0.0.1:<port>``.
        require_https: Refuse ``http`` for hosts not allow-listed.
        resolve_timeout: Seconds allowed for resolving a host name.

    Example:
        ```python
        UrlPolicy()  # https, port 443 and public addresses only
        UrlPolicy(allow=["127.0.0.1:8000", "10.20.0.0/16", "mcp.example.com:8443"])
        ```
    """

    allow: Sequence[str] = ()
    require_https: bool = True
    resolve_timeout: float = 5.0
    # Derived from `allow`: left out of comparisons (and of hashing, a dict being unhashable).
    _hosts: Mapping[str, Ports] = field(init=False, repr=False, compare=False)
    _networks: tuple[tuple[IPNetwork, Ports], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts: dict[str, Ports] = {}
        networks: list[tuple[IPNetwork, Ports]] = []
        for entry in self.allow:
            target, ports = _parse_entry(entry)
            if isinstance(target, str):
                hosts[target] = _union(hosts[target], ports) if target in hosts else ports
            else:
                networks.append((target, ports))
        object.__setattr__(self, "_hosts", hosts)
        object.__setattr__(self, "_networks", tuple(networks))

    async def check(self, url: str, *, server: str) -> None:
        """Refuse ``url`` unless the policy admits it, resolving its host name.

        Raises:
            ServerRefusedError: The URL is not admitted; the message names the rule, never
                an address the host resolved to.
        """
        try:
            parsed = httpx2.URL(url)
        except Exception:
            raise self._refused(server, "is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise self._refused(server, "must be an absolute https:// URL")
        if parsed.userinfo:
            raise self._refused(server, "must not hold credentials; put them in `headers`")
        host = _normal_host(parsed.host)
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        if host in self._hosts:
            if _admits(self._hosts[host], port):
                return  # allow-listed by name: any scheme, any address
            raise self._port_refused(server, host, port)
        if host in _METADATA_HOSTS:
            raise self._refused(server, f"points at {host}, a cloud metadata service")
        literal = _literal(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port, server=server)
        if all(_admits_port(self._network_ports(a), port) for a in addresses):
            return  # every address is in a network allow-listed for this port: any scheme
        if parsed.scheme != "https" and self.require_https:
            raise self._refused(server, f"uses {parsed.scheme}://; only https:// is allowed")
        for address in addresses:
            ports = self._network_ports(address)
            if not isinstance(ports, _NotListed):
                if _admits(ports, port):
                    continue
                raise self._port_refused(server, host, port)  # allow-listed, but not on this port
            kind = _forbidden_kind(address)
            if kind is None:
                continue
            if literal is not None:
                raise self._refused(server, f"points at {host}, a {kind} address")
            logger.warning("MCP server %r: host %r resolves to %s, a %s address", server, host, address, kind)
            raise self._unresolved(server, host)
        if not self._public_port(port):
            raise self._port_refused(server, host, port)

    def connect_refusal(self, host: str, port: int, address: str) -> str | None:
        """Why a connection to ``address`` (resolved from ``host``) on ``port`` is refused, or ``None``.

        The reason is for the deployment's log (it names the address); users are told
        only that the server could not be reached. The URL's scheme was checked by
        `check` at registration; this is the check of every connection.
        """
        host = _normal_host(host)
        if host in self._hosts:
            return None if _admits(self._hosts[host], port) else f"port {port} is not allow-listed for {host}"
        if host in _METADATA_HOSTS:
            return f"{host} is a cloud metadata service"
        parsed = _literal(address.split("%")[0])
        if parsed is None:
            return f"{address!r} is not an IP address"
        ports = self._network_ports(parsed)
        if not isinstance(ports, _NotListed):
            return None if _admits(ports, port) else f"port {port} is not allow-listed for {parsed}"
        kind = _forbidden_kind(parsed)
        if kind is not None:
            return f"{parsed} is a {kind} address"
        if not self._public_port(port):
            return f"port {port} is not 443 and not allow-listed for {host}"
        return None

    def _public_port(self, port: int) -> bool:
        """Whether a host not allow-listed may use ``port``: 443 (80 too without ``require_https``)."""
        return port == HTTPS_PORT or (port == _DEFAULT_PORTS["http"] and not self.require_https)

    def _network_ports(self, address: IPAddress) -> Ports | _NotListed:
        """The ports the networks holding ``address`` admit, together; `_NOT_LISTED` if none holds it."""
        found: Ports | _NotListed = _NOT_LISTED
        for network, ports in self._networks:
            if address.version == network.version and address in network:
                found = ports if isinstance(found, _NotListed) else _union(found, ports)
        return found

    async def _resolve(self, host: str, port: int, *, server: str) -> list[IPAddress]:
        try:
            with anyio.fail_after(self.resolve_timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            logger.warning(
                "MCP server %r: host %r did not resolve within %gs", server, host, self.resolve_timeout
            )
            raise self._unresolved(server, host) from None
        except OSError as exc:
            logger.warning("MCP server %r: host %r does not resolve (%s)", server, host, exc.strerror or exc)
            raise self._unresolved(server, host) from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = _literal(str(info[4][0]).split("%")[0])
            if address is not None:
                addresses.append(address)
        if not addresses:
            raise self._unresolved(server, host)
        return addresses

    def _refused(self, server: str, why: str) -> ServerRefusedError:
        return ServerRefusedError(
            f"MCP server {server!r}: its URL {why}; register a public https:// server, "
            "or ask the deployment to allow-list the host",
            server=server,
            field="url",
        )

    def _unresolved(self, server: str, host: str) -> ServerRefusedError:
        # One text whether the name does not resolve, is slow, or resolves to refused addresses:
        # which of these holds would tell a user about the deployment's network.
        return self._refused(
            server,
            f"host {host!r} does not resolve to public addresses (the rule for hosts not allow-listed)",
        )

    def _port_refused(self, server: str, host: str, port: int) -> ServerRefusedError:
        shown = f"[{host}]" if ":" in host else host
        return ServerRefusedError(
            f"MCP server {server!r}: its URL uses port {port}; only port 443 is allowed unless the "
            f"deployment allow-lists {shown}:{port}; register a server on port 443, or ask the deployment "
            "to allow-list the host and port",
            server=server,
            field="url",
        )


class _NotListed:
    """No allow-listed network holds the address (distinct from ``None``, every port)."""


_NOT_LISTED: Final = _NotListed()


def _admits(ports: Ports, port: int) -> bool:
    return ports is None or port in ports


def _admits_port(ports: Ports | _NotListed, port: int) -> bool:
    return not isinstance(ports, _NotListed) and _admits(ports, port)


def _union(a: Ports, b: Ports) -> Ports:
    return None if a is None or b is None else a | b


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    host = host.strip("[]").lower()
    literal = _literal(host)
    return host if literal is None else str(literal)


def _parse_entry(entry: str) -> tuple[str | IPNetwork, Ports]:
    """One allow-list entry: a host or a network, and its ports."""
    text = entry.strip()
    port: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad_entry(entry, "an opening [ without ]")
        target, rest = text[1:end], text[end + 1 :]
        if rest.startswith("/"):
            length, colon, tail = rest[1:].partition(":")
            target, port = f"{target}/{length}", tail if colon else None
        elif rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise _bad_entry(entry, "text after ]")
    elif "/" in text:
        address, _, tail = text.partition("/")
        length, colon, rest = tail.partition(":")
        target, port = f"{address}/{length}", rest if colon else None
    elif text.count(":") == 1:
        target, port = text.split(":")
    else:
        target = text  # a name, an IPv4 address, or a bare IPv6 address (no port)
    ports = _parse_ports(entry, port)
    if "/" in target:
        try:
            return ipaddress.ip_network(target, strict=False), ports
        except ValueError:
            raise _bad_entry(entry, "not a network") from None
    if not target:
        raise _bad_entry(entry, "no host")
    return _normal_host(target), ports


def _parse_ports(entry: str, port: str | None) -> Ports:
    if port is None:
        return frozenset({HTTPS_PORT})
    if port == "*":
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad_entry(entry, "the port must be a number from 1 to 65535, or *")
    return frozenset({int(port)})


def _bad_entry(entry: str, why: str) -> ConfigError:
    return ConfigError(f"allow-list entry {entry!r} is invalid ({why}); {_ENTRY_SYNTAX}", field="allow")


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
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"  # fec0::/10: deprecated, still used privately; Python counts it as global
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved or not address.is_global:
        return "non-public"
    return None
