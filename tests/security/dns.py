"""Simulated DNS for the hostile-tenant tests: names that answer loopback addresses, changing over time.

`SimulatedDns` patches the resolver inside the process that connects: anyio's
asyncio backend (``anyio.getaddrinfo`` and ``anyio.connect_tcp`` resolve there,
whatever the event loop: uvloop, which the Agent Server runs, resolves in C and
never calls ``socket.getaddrinfo``) and ``socket.getaddrinfo`` (for everything else). Each simulated name
has a sequence of answers: the first lookup gets the first address list, the
next lookup the next one, and the last answer repeats from then on, which is
how a rebinding name behaves. Every other name goes to the real resolver.
Only ``127.0.0.x`` addresses may be answered, so no test traffic leaves the host.

A process the test does not control (the Agent Server, through a graph module)
installs the same simulation with `install_from_env`, from the JSON in
``MCPBRIDGE_TEST_DNS``::

    {"notes.rebind.test": [["127.0.0.2"], ["127.0.0.3"]]}
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

from anyio._backends._asyncio import AsyncIOBackend

__all__ = ["DNS_ENV", "SimulatedDns", "install_from_env"]

DNS_ENV: Final = "MCPBRIDGE_TEST_DNS"
"""The environment variable holding a simulation as JSON: ``{name: [[address, ...], ...]}``."""

_LOOPBACK: Final = ipaddress.ip_network("127.0.0.0/24")

_installed: SimulatedDns | None = None


class SimulatedDns:
    """Answers for some names, in sequence; a context manager patching ``socket.getaddrinfo``.

    Args:
        answers: For each name (case-insensitive), the address lists its successive lookups answer.

    Raises:
        ValueError: A name has no answer, or an answer holds an address outside 127.0.0.0/24.

    Example:
        ```python
        with SimulatedDns({"notes.rebind.test": [["127.0.0.2"], ["127.0.0.3"]]}) as dns:
            ...
        assert dns.lookups["notes.rebind.test"] >= 2
        ```
    """

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.answers: dict[str, tuple[tuple[str, ...], ...]] = {}
        for name, sequence in answers.items():
            lists = tuple(tuple(addresses) for addresses in sequence)
            if not lists or not all(lists):
                raise ValueError(f"simulated name {name!r} needs at least one non-empty answer")
            for address in (a for addresses in lists for a in addresses):
                if ipaddress.ip_address(address) not in _LOOPBACK:
                    raise ValueError(f"simulated name {name!r} answers {address}: only 127.0.0.x is allowed")
            self.answers[name.lower().rstrip(".")] = lists
        self.lookups: dict[str, int] = dict.fromkeys(self.answers, 0)
        """How many times each simulated name was looked up so far."""
        self._lock = threading.Lock()  # lookups run in the event loop's resolver threads
        self._real: Callable[..., Any] | None = None
        self._real_backend: Any = None

    def answer(self, name: str) -> tuple[str, ...] | None:
        """The addresses the next lookup of ``name`` gets (and count it), or ``None`` if not simulated."""
        key = name.lower().rstrip(".")
        sequence = self.answers.get(key)
        if sequence is None:
            return None
        with self._lock:
            count = self.lookups[key]
            self.lookups[key] = count + 1
        return sequence[min(count, len(sequence) - 1)]

    def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        *rest: Any,
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]]:
        """``socket.getaddrinfo`` with the simulated names answered here."""
        name = host.decode("idna") if isinstance(host, bytes) else host
        addresses = None if name is None else self.answer(name)
        if addresses is None:
            real = self._real or socket.getaddrinfo
            return real(host, port, family, type, *rest)
        if family not in (0, socket.AF_INET):
            return []  # every simulated answer is IPv4
        number = int(port.decode() if isinstance(port, bytes) else port) if port not in (None, b"", "") else 0
        kind = socket.SocketKind(type) if type else socket.SOCK_STREAM
        return [(socket.AF_INET, kind, socket.IPPROTO_TCP, "", (a, number)) for a in addresses]

    def install(self) -> None:
        """Patch anyio's and the socket module's resolvers in this process (until `uninstall`)."""
        if self._real is not None:
            return
        self._real = socket.getaddrinfo
        socket.getaddrinfo = self.getaddrinfo  # pyright: ignore[reportAttributeAccessIssue]
        real: Any = AsyncIOBackend.__dict__["getaddrinfo"]  # the classmethod itself
        self._real_backend = real
        simulation = self

        async def getaddrinfo(
            cls: Any, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
        ) -> Any:
            name = host.decode("idna") if isinstance(host, bytes) else host
            if name is not None and name.lower().rstrip(".") in simulation.answers:
                return simulation.getaddrinfo(host, port, family, type)
            return await real.__func__(cls, host, port, family=family, type=type, proto=proto, flags=flags)

        AsyncIOBackend.getaddrinfo = classmethod(getaddrinfo)  # pyright: ignore[reportAttributeAccessIssue]

    def uninstall(self) -> None:
        """Give the resolvers back."""
        if self._real is not None:
            socket.getaddrinfo = self._real
            AsyncIOBackend.getaddrinfo = self._real_backend  # pyright: ignore[reportAttributeAccessIssue]
            self._real = None

    def __enter__(self) -> SimulatedDns:
        self.install()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()


def install_from_env(environ: Mapping[str, str] | None = None) -> SimulatedDns | None:
    """Install the simulation ``MCPBRIDGE_TEST_DNS`` describes for the life of this process (once).

    Returns:
        The simulation (the same one on later calls), or ``None`` when the variable is not set.

    Raises:
        ValueError: The variable is not JSON of the form ``{name: [[address, ...], ...]}``.
    """
    global _installed
    text = (os.environ if environ is None else environ).get(DNS_ENV)
    if not text:
        return None
    if _installed is None:
        spec = json.loads(text)
        if not isinstance(spec, dict):
            raise ValueError(f"{DNS_ENV} must be a JSON object of name: [[address, ...], ...]")
        _installed = SimulatedDns(spec)  # pyright: ignore[reportUnknownArgumentType]
    _installed.install()  # again if a test uninstalled it
    return _installed
