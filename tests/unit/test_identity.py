from __future__ import annotations

import ast
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import ExecutionInfo, ServerInfo

import mcpbridge.identity
from mcpbridge import ConfigError, IdentityMeta, IdentitySigner, RunIdentity
from mcpbridge.identity import Signer, identity_from_runtime
from mcpbridge.server import DEFAULT_META_PREFIX, TOKEN_FIELD, IdentityVerifier
from mcpbridge.signing import registered_audience

from ._signing import SECRET

FULL = RunIdentity(thread_id="t", run_id="r", user_id="u", assistant_id="a", graph_id="g")


@dataclass
class User:
    identity: str


def execution(thread_id: str | None = "t-exec", run_id: str | None = "r-exec") -> ExecutionInfo:
    return ExecutionInfo(
        checkpoint_id="c", checkpoint_ns="", task_id="task", thread_id=thread_id, run_id=run_id
    )


def runtime(**attrs: Any) -> SimpleNamespace:
    attrs.setdefault("execution_info", None)
    attrs.setdefault("server_info", None)
    attrs.setdefault("config", {})
    return SimpleNamespace(**attrs)


# --- IdentityMeta ---------------------------------------------------------------------------------


def test_default_keys() -> None:
    assert DEFAULT_META_PREFIX == "dev.mcpbridge/"
    assert IdentityMeta().build(FULL) == {
        "dev.mcpbridge/thread_id": "t",
        "dev.mcpbridge/run_id": "r",
        "dev.mcpbridge/user_id": "u",
        "dev.mcpbridge/assistant_id": "a",
        "dev.mcpbridge/graph_id": "g",
    }


def test_none_fields_are_left_out() -> None:
    assert IdentityMeta().build(RunIdentity(thread_id="t")) == {"dev.mcpbridge/thread_id": "t"}
    assert IdentityMeta().build(RunIdentity()) == {}


def test_include_prefix_and_disable() -> None:
    meta = IdentityMeta(prefix="com.acme.agents/", include=("thread_id", "user_id"))
    assert meta.build(FULL) == {"com.acme.agents/thread_id": "t", "com.acme.agents/user_id": "u"}
    assert IdentityMeta(enabled=False).build(FULL) == {}


def test_read_round_trips() -> None:
    meta = IdentityMeta(prefix="com.example/")
    assert meta.read(meta.build(FULL)) == FULL
    assert meta.read(None) == RunIdentity()
    assert meta.read({"com.example/thread_id": 42, "dev.mcpbridge/user_id": "other"}) == RunIdentity(
        thread_id="42"
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "io.modelcontextprotocol/",
        "dev.mcp/",
        "org.modelcontextprotocol.api/",
        "com.mcp.tools/",
        "IO.MCP/",
        "mcp/",
    ],
)
def test_reserved_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="reserved by MCP") as info:
        IdentityMeta(prefix=prefix)
    assert info.value.field == "prefix"


@pytest.mark.parametrize("prefix", ["com.example.mcp/", "dev.mcpbridge/", "com.example/", "acme/", "a-b.c1/"])
def test_valid_prefixes(prefix: str) -> None:
    assert IdentityMeta(prefix=prefix).key("thread_id") == f"{prefix}thread_id"


@pytest.mark.parametrize(
    "prefix",
    ["", "com.example", "com..example/", "-com.example/", "com.example-/", "1com/", "com/example/", "a b/"],
)
def test_malformed_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="not a valid MCP _meta prefix"):
        IdentityMeta(prefix=prefix)


def test_unknown_include_field_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\['tenant_id'\] do not exist") as info:
        IdentityMeta(include=("thread_id", "tenant_id"))
    assert info.value.field == "include"


# --- identity_from_runtime ------------------------------------------------------------------------


def test_nothing_known() -> None:
    assert identity_from_runtime(None) == RunIdentity()
    assert identity_from_runtime(None, {}) == RunIdentity()


def test_from_execution_and_server_info() -> None:
    rt = runtime(
        execution_info=execution(),
        server_info=ServerInfo(assistant_id="asst", graph_id="graph", user=User("alice")),  # type: ignore[arg-type]
    )
    assert identity_from_runtime(rt) == RunIdentity(
        thread_id="t-exec", run_id="r-exec", user_id="alice", assistant_id="asst", graph_id="graph"
    )


def test_from_config_when_runtime_has_no_info() -> None:
    run_id = uuid.uuid4()
    config: RunnableConfig = {
        "configurable": {"thread_id": "t-cfg", "langgraph_auth_user": {"identity": "bob"}},
        "run_id": run_id,
        "metadata": {"assistant_id": "asst-cfg", "graph_id": "graph-cfg"},
    }
    expected = RunIdentity(
        thread_id="t-cfg", run_id=str(run_id), user_id="bob", assistant_id="asst-cfg", graph_id="graph-cfg"
    )
    assert identity_from_runtime(runtime(config=config)) == expected
    assert identity_from_runtime(None, config) == expected


def test_runtime_info_wins_over_config() -> None:
    config: RunnableConfig = {
        "configurable": {"thread_id": "t-cfg", "langgraph_auth_user": User("bob")},
        "run_id": uuid.uuid4(),
        "metadata": {"assistant_id": "asst-cfg", "graph_id": "graph-cfg"},
    }
    rt = runtime(
        execution_info=execution(),
        server_info=ServerInfo(assistant_id="asst", graph_id="graph", user=User("alice")),  # type: ignore[arg-type]
        config=config,
    )
    assert identity_from_runtime(rt) == RunIdentity(
        thread_id="t-exec", run_id="r-exec", user_id="alice", assistant_id="asst", graph_id="graph"
    )


def test_execution_info_without_ids_falls_back_to_config() -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "t-cfg"}, "metadata": {"run_id": "r-meta"}}
    rt = runtime(execution_info=execution(thread_id=None, run_id=None), config=config)
    assert identity_from_runtime(rt) == RunIdentity(thread_id="t-cfg", run_id="r-meta")


def test_user_id_from_configurable_and_odd_values() -> None:
    config: RunnableConfig = {"configurable": {"langgraph_auth_user_id": "carol", "thread_id": ""}}
    assert identity_from_runtime(None, config) == RunIdentity(user_id="carol")
    user_without_identity: RunnableConfig = {"configurable": {"langgraph_auth_user": object()}}
    assert identity_from_runtime(None, user_without_identity) == RunIdentity()


def test_explicit_config_wins_over_runtime_config() -> None:
    rt = runtime(config={"configurable": {"thread_id": "from-runtime"}})
    assert identity_from_runtime(rt, {"configurable": {"thread_id": "explicit"}}).thread_id == "explicit"


@dataclass(frozen=True)
class InitialsSigner:
    """A `Signer` that is not `IdentitySigner`: the protocol is all `IdentityMeta` needs."""

    header: str | None = "X-Initials"

    def sign(self, identity: RunIdentity, *, server: str, registered: bool = False) -> str:
        return f"{identity.user_id}>{server}{'!' if registered else ''}"


def test_identity_meta_signs_with_any_signer() -> None:
    meta, headers = IdentityMeta(signer=InitialsSigner()).for_call(FULL, server="files", registered=True)
    assert meta[f"{DEFAULT_META_PREFIX}{TOKEN_FIELD}"] == "u>files!"
    assert headers == {"X-Initials": "u>files!"}
    _, no_headers = IdentityMeta(signer=InitialsSigner(header=None)).for_call(FULL, server="files")
    assert no_headers == {}


def test_identity_signer_is_a_signer() -> None:
    signer: Signer = IdentitySigner("k" * 16 + "0123456789abcdef")
    assert signer.header == "Mcpbridge-Identity"


def test_the_identity_module_does_not_import_signing() -> None:
    """Signing depends on identity, never the other way: identity owns the `Signer` protocol."""
    tree = ast.parse(Path(mcpbridge.identity.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {"mcpbridge.signing", "mcpbridge.server"}.isdisjoint(imported)


# --- IdentityMeta.for_runtime (the per-call path) ------------------------------------------------


@pytest.mark.parametrize(
    "rt",
    [
        None,
        runtime(execution_info=execution()),
        runtime(
            execution_info=execution(thread_id=None),
            server_info=ServerInfo(assistant_id="asst", graph_id="graph", user=User("alice")),  # type: ignore[arg-type]
            config={"configurable": {"thread_id": "t-cfg"}, "metadata": {"run_id": "r-meta"}},
        ),
        runtime(config={"configurable": {"langgraph_auth_user_id": "carol"}, "run_id": uuid.uuid4()}),
        runtime(config={"configurable": {"thread_id": "", "langgraph_auth_user": {"identity": 42}}}),
    ],
)
@pytest.mark.parametrize(
    "meta",
    [
        IdentityMeta(),
        IdentityMeta(prefix="com.acme/", include=("user_id", "thread_id")),
        IdentityMeta(enabled=False),
        IdentityMeta(signer=IdentitySigner(SECRET)),
    ],
)
def test_for_runtime_is_for_call_of_the_runtime_identity(rt: Any, meta: IdentityMeta) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "t-given"}}
    for given in (None, config):
        expected = meta.for_call(identity_from_runtime(rt, given), server="files", registered=True)
        got = meta.for_runtime(rt, given, server="files", registered=True)
        if meta.signer is None:
            assert got == expected
        else:  # each token is new (its own id and time): the same entries, and a token of the same identity
            assert got[0].keys() == expected[0].keys() and got[1].keys() == expected[1].keys()
            token = got[0].pop(f"dev.mcpbridge/{TOKEN_FIELD}")
            assert got[0] == {k: v for k, v in expected[0].items() if not k.endswith(TOKEN_FIELD)}
            verifier = IdentityVerifier(SECRET, audience=registered_audience("files"))
            verified = verifier.verify(token)
            fields = ("thread_id", "run_id", "user_id", "assistant_id", "graph_id")
            assert RunIdentity(**{f: getattr(verified, f) for f in fields}) == identity_from_runtime(
                rt, given
            )
