"""The ``mcpbridge`` command line: ``mcpbridge serve`` offers LangGraph graphs to MCP clients.

::

    mcpbridge serve examples.agent:make_graph                      # stdio
    mcpbridge serve agent=./examples/agent.py:make_graph --transport http --port 8000
    mcpbridge serve --config langgraph.json agent --checkpointer sqlite:threads.db
    mcpbridge serve --remote http://127.0.0.1:2024 --transport http --auth remote
    mcpbridge serve agent=my_app:graph --transport http --oauth-issuer https://auth.example.com \
        --resource https://agents.example.com/mcp --scope agents:run
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from mcpbridge.errors import ConfigError, MCPBridgeError

if TYPE_CHECKING:
    from mcpbridge.serving.loading import ServedGraph
    from mcpbridge.serving.oauth import ProtectedResource
    from mcpbridge.serving.server import AgentMCPServer
    from mcpbridge.serving.users import UserVerifier

__all__ = ["build_parser", "main"]

REMOTE_TOKEN_ENV = "MCPBRIDGE_REMOTE_TOKEN"
"""Bearer token sent to the Agent Server in remote mode over stdio (over HTTP, the caller's is)."""

INTROSPECTION_CLIENT_ENV = ("MCPBRIDGE_INTROSPECTION_CLIENT_ID", "MCPBRIDGE_INTROSPECTION_CLIENT_SECRET")
"""The client credentials ``--introspect`` authenticates with at the introspection endpoint."""

_SERVE_HELP = """\
Serve LangGraph graphs as MCP tools, one tool per graph.

GRAPH is [name=]module:attr or [name=]path/to/file.py:attr: a compiled graph, a
StateGraph, or a factory taking the ServerRuntime (such as agent_factory makes).
With --config, GRAPH is a graph id of that langgraph.json (default: all of them).
With --remote, GRAPH is an assistant id, graph id or name on the Agent Server
(default: all of its assistants).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mcpbridge``."""
    parser = argparse.ArgumentParser(prog="mcpbridge", description="Bridge MCP servers and LangGraph agents.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve LangGraph graphs over MCP",
        description=_SERVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("graphs", nargs="*", metavar="GRAPH", help="the graphs to serve (see above)")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, metavar="FILE", help="a langgraph.json whose graphs to serve")
    source.add_argument("--remote", metavar="URL", help="serve the assistants of the Agent Server at URL")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port; 0 picks a free one (default: 8000)")
    serve.add_argument("--path", default="/mcp", help="HTTP path of the MCP endpoint (default: /mcp)")
    serve.add_argument(
        "--checkpointer",
        default=None,
        metavar="SPEC",
        help="where threads are kept: memory, sqlite:PATH, or postgres://user:pass@host/db (shared by "
        "replicas; default: over stdio a SQLite file in the user's state directory, over HTTP memory)",
    )
    serve.add_argument(
        "--auth",
        metavar="module:attr",
        help="HTTP bearer-token verifier: an async function token -> user (a mapping with identity and "
        "permissions) or None; 'remote' asks the Agent Server (with --remote)",
    )
    _add_oauth_arguments(serve)
    serve.add_argument("--name", default="mcpbridge", help="the MCP server's name (default: mcpbridge)")
    serve.add_argument(
        "--json-response", action="store_true", help="answer HTTP with JSON, not event streams"
    )
    serve.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    return parser


def _add_oauth_arguments(serve: argparse.ArgumentParser) -> None:
    oauth = serve.add_argument_group(
        "OAuth", "serve HTTP as an OAuth protected resource: access tokens of an authorization server"
    )
    oauth.add_argument(
        "--oauth-issuer",
        action="append",
        default=[],
        metavar="URL",
        help="an authorization server whose access tokens are accepted (repeatable)",
    )
    oauth.add_argument("--resource", metavar="URL", help="this server's public MCP URL, the tokens' audience")
    oauth.add_argument(
        "--scope", action="append", default=[], metavar="S", help="a scope every request needs (repeatable)"
    )
    oauth.add_argument(
        "--introspect",
        action="store_true",
        help="check tokens at the issuer's introspection endpoint, as the client "
        f"{INTROSPECTION_CLIENT_ENV[0]} with secret {INTROSPECTION_CLIENT_ENV[1]} (default: JWTs by JWKS)",
    )
    oauth.add_argument(
        "--oauth-allow",
        action="append",
        default=[],
        metavar="HOST",
        help="a host[:port] or network the authorization server may be at although not public "
        "(e.g. 127.0.0.1:9000; repeatable)",
    )


def _protected_resource(args: argparse.Namespace) -> ProtectedResource | None:
    from mcpbridge.serving.oauth import Introspection, ProtectedResource
    from mcpbridge.urlpolicy import UrlPolicy

    if not args.oauth_issuer:
        given = [flag for flag, value in _oauth_flags(args) if value]
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --oauth-issuer URL",
                field="oauth",
            )
        return None
    if args.transport != "http":
        raise ConfigError("--oauth-issuer is for --transport http; over stdio the caller is the local user")
    if args.auth:
        raise ConfigError("give --auth or --oauth-issuer, not both", field="auth")
    if args.remote:
        raise ConfigError(
            "--oauth-issuer does not apply to --remote: the caller's token would go on to the Agent Server, "
            "token passthrough that the MCP authorization spec forbids; use --auth remote, and OAuth on "
            "the Agent Server",
            field="oauth",
        )
    if not args.resource:
        raise ConfigError(
            "--oauth-issuer needs --resource URL, this server's public MCP URL (e.g. https://agents.example.com/mcp)",
            field="resource",
        )
    introspection = None
    if args.introspect:
        client_id, secret = (os.environ.get(name) for name in INTROSPECTION_CLIENT_ENV)
        if not client_id or not secret:
            raise ConfigError(
                f"--introspect needs the introspection client's credentials in {INTROSPECTION_CLIENT_ENV[0]} "
                f"and {INTROSPECTION_CLIENT_ENV[1]}",
                field="introspection",
            )
        introspection = Introspection(client_id, secret)
    return ProtectedResource(
        args.resource,
        issuers=args.oauth_issuer,
        scopes=args.scope,
        introspection=introspection,
        policy=UrlPolicy(allow=args.oauth_allow),
    )


def _oauth_flags(args: argparse.Namespace) -> list[tuple[str, Any]]:
    return [
        ("--resource", args.resource),
        ("--scope", args.scope),
        ("--introspect", args.introspect),
        ("--oauth-allow", args.oauth_allow),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mcpbridge``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:  # imported here, so that without the serve extra the command says what to install
        from mcpbridge.serving.interface import describe_error
    except ImportError as exc:
        print(f"mcpbridge serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        server, what = _server(args)
    except ConfigError as exc:
        print(f"mcpbridge serve: error: {exc}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"mcpbridge: serving {what} at {url}", file=sys.stderr, flush=True)

    try:
        if args.transport == "stdio":
            anyio.run(server.run_stdio)
        else:
            anyio.run(
                lambda: server.run_http(
                    host=args.host,
                    port=args.port,
                    path=args.path,
                    json_response=args.json_response,
                    on_ready=ready,
                    log_level=args.log_level,
                )
            )
    except KeyboardInterrupt:
        return 0
    except (MCPBridgeError, BaseExceptionGroup) as exc:  # pyright: ignore[reportUnknownVariableType]
        if isinstance(exc, BaseExceptionGroup) and not _only_errors(exc):  # pyright: ignore[reportUnknownArgumentType]
            raise
        print(f"mcpbridge serve: error: {describe_error(exc)}", file=sys.stderr)  # pyright: ignore[reportUnknownArgumentType]
        return 1
    return 0


def _only_errors(group: BaseExceptionGroup[Any]) -> bool:
    return all(isinstance(e, MCPBridgeError) for e in group.exceptions)


def _server(args: argparse.Namespace) -> tuple[AgentMCPServer, str]:
    from mcpbridge.serving.checkpointers import (
        default_checkpointer,
        parse_checkpointer,
        require_checkpointer,
    )
    from mcpbridge.serving.loading import load_config_graphs, parse_graph_arg
    from mcpbridge.serving.remote import RemoteTokenCheck
    from mcpbridge.serving.server import AgentMCPServer

    oauth = _protected_resource(args)
    if args.transport == "stdio" and args.auth:
        raise ConfigError(
            "--auth is for --transport http; over stdio the caller is the local user", field="auth"
        )
    if args.remote:
        if args.checkpointer is not None:
            raise ConfigError("--checkpointer does not apply to --remote: the Agent Server keeps the threads")
        auth: UserVerifier | None = None
        if args.auth == "remote":
            auth = RemoteTokenCheck(args.remote)
        elif args.auth:
            auth = _verifier(args.auth)
        token = os.environ.get(REMOTE_TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token and args.transport == "stdio" else None
        server = AgentMCPServer.from_remote(
            args.remote, assistants=args.graphs, headers=headers, name=args.name, auth=auth
        )
        return server, f"the assistants of {args.remote}"
    if args.auth == "remote":
        raise ConfigError("--auth remote needs --remote URL", field="auth")
    checkpointer = (
        parse_checkpointer(args.checkpointer)
        if args.checkpointer is not None
        else default_checkpointer(args.transport)
    )
    require_checkpointer(checkpointer)
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(
            0, str(Path.cwd())
        )  # module:attr names modules of the working directory, as python -m
    graphs: list[ServedGraph]
    if args.config is not None:
        graphs = load_config_graphs(args.config, args.graphs)
    elif args.graphs:
        graphs = [parse_graph_arg(argument) for argument in args.graphs]
    else:
        raise ConfigError(
            "name a graph to serve, as module:attr or path/to/file.py:attr (or use --config langgraph.json "
            "or --remote URL)",
            field="graphs",
        )
    auth = _verifier(args.auth) if args.auth else None
    server = AgentMCPServer.from_graphs(
        graphs, checkpointer=checkpointer, name=args.name, auth=auth, oauth=oauth
    )
    names = ", ".join(graph.name for graph in graphs)
    return server, f"{len(graphs)} graph{'s' if len(graphs) != 1 else ''} ({names})"


def _verifier(spec: str) -> UserVerifier:
    from mcpbridge.serving.loading import load_object

    verifier: Any = load_object(spec, what="auth")
    if not callable(verifier):
        raise ConfigError(
            f"--auth {spec!r} is a {type(verifier).__name__}; name an async function token -> user or None",
            field="auth",
        )
    return cast("UserVerifier", verifier)


if __name__ == "__main__":
    sys.exit(main())
