"""The names a user's own values may never set, and the checks of user-written names and values.

A user's values (their store items, the servers they register) may fill only the
header and environment variable names the deployment declares (``user_headers``,
``user_env``). The names below are refused even when declared: they change how a
request is framed or routed, or what a process runs before it speaks MCP.
Matching ignores case; a ``*`` ends a prefix.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Final

IDENTITY_HEADER: Final = "Mcpbridge-Identity"
"""The signed identity header (`mcpbridge.signing.IDENTITY_HEADER`, kept here to avoid an import cycle)."""

REFUSED_HEADERS: Final[Mapping[str, tuple[str, ...]]] = {
    "hop-by-hop and framing headers": (
        "Connection",
        "Keep-Alive",
        "Proxy-*",
        "TE",
        "Trailer",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
        "Content-*",
        "Expect",
        "Accept",
        "Accept-Encoding",
        "Host",
    ),
    "headers proxies trust for the client's address": ("Forwarded", "X-Forwarded-*", "X-Real-Ip"),
    "MCP's own headers": ("Mcp-*", "Last-Event-Id"),
    "the identity header": (IDENTITY_HEADER, "Mcpbridge-*"),
}
"""Header names no user value may set, by rule."""

REFUSED_ENV: Final[Mapping[str, tuple[str, ...]]] = {
    "dynamic loader and C library variables": (
        "LD_*",
        "DYLD_*",
        "GLIBC_TUNABLES",
        "MALLOC_*",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
    ),
    "interpreter variables": (
        "PYTHON*",
        "NODE_*",
        "ELECTRON_*",
        "PERL*",
        "RUBY*",
        "GEM_*",
        "BUNDLE_*",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "JAVA_OPTIONS",
        "CLASSPATH",
        "LUA_*",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "DOTNET_*",
        "COMPLUS_*",
        "CORECLR_*",
        "DENO_*",
        "BUN_*",
    ),
    "shell start-up variables": (
        "BASH_ENV",
        "ENV",
        "BASH_FUNC_*",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "CDPATH",
        "PROMPT_COMMAND",
        "ZDOTDIR",
        "SHELL",
    ),
    "search paths and home directories": ("PATH", "HOME", "TMPDIR", "TMP", "TEMP", "XDG_*"),
    "package manager and tool configuration": (
        "GIT_*",
        "NPM_CONFIG_*",
        "YARN_*",
        "PNPM_*",
        "COREPACK_*",
        "PIP_*",
        "PIPX_*",
        "UV_*",
        "CONDA_*",
        "CARGO_*",
        "GOFLAGS",
        "GOPROXY",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "BROWSER",
        "SSH_*",
        "SUDO_ASKPASS",
    ),
    "network, proxy and TLS configuration": (
        "*_PROXY",
        "OPENSSL_*",
        "SSL_*",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HOSTALIASES",
        "RESOLV_*",
        "RES_OPTIONS",
        "LOCALDOMAIN",
    ),
}
"""Environment variable names no user value may set, by rule: what makes a process run code or
read configuration before it speaks MCP (``PYTHONPATH``, ``LD_PRELOAD``, ``NODE_OPTIONS``,
``BASH_ENV``, ...), or sends its traffic elsewhere. ``HOME`` and ``TMPDIR`` are refused too:
tools read start-up files from the home directory and write where the temporary directory points."""

HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name (an RFC 9110 token)."""
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A portable environment variable name."""
_BAD_VALUE: Final = re.compile(r"[\r\n\x00]")


def _rule(name: str, table: Mapping[str, tuple[str, ...]]) -> str | None:
    folded = name.upper()
    for rule, patterns in table.items():
        if any(fnmatch.fnmatchcase(folded, pattern.upper()) for pattern in patterns):
            return rule
    return None


def refused_header(name: str) -> str | None:
    """The rule that refuses the header ``name`` to users, or ``None`` when it may be declared."""
    if not HEADER_NAME.fullmatch(name):
        return "not a valid header name"
    return _rule(name, REFUSED_HEADERS)


def refused_env(name: str) -> str | None:
    """The rule refusing the environment variable ``name`` to users, or ``None`` when it may be declared."""
    if not ENV_NAME.fullmatch(name):
        return "not a valid variable name (letters, digits and '_', not starting with a digit)"
    return _rule(name, REFUSED_ENV)


def bad_value(value: str) -> bool:
    """Whether ``value`` holds a line break or a NUL (which would split a header or an environment)."""
    return _BAD_VALUE.search(value) is not None
