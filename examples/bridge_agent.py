"""A LangChain agent over the tools of MCP servers, in one script: `Bridge` and ``create_agent``.

    python examples/bridge_agent.py

The `Bridge` starts the example MCP server (``python -m mcpbridge.testing.echo``) over stdio,
offers its tools to the agent and stops it on exit. Each call carries the run's identity
(user, thread, run) in its ``_meta``; ``count`` streams its progress as ``custom`` events.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any, cast

import anyio
from langchain.agents import create_agent  # pyright: ignore[reportUnknownVariableType]
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from mcpbridge import Bridge, StdioServer
from mcpbridge.testing import load_chat_model

QUESTIONS = ('call whoami {} then add {"a": 2, "b": 40}', 'call count {"to": 3}')


async def main() -> None:
    """Ask the agent to call the tools, printing what the run streams."""
    echo = StdioServer(name="echo", command=sys.executable, args=["-m", "mcpbridge.testing.echo"])
    async with Bridge([echo]) as bridge:
        agent: CompiledStateGraph[Any, Any, Any, Any] = create_agent(load_chat_model(), tools=bridge.tools)
        for question in QUESTIONS:
            config: RunnableConfig = {
                "run_id": uuid.uuid4(),
                "configurable": {"thread_id": "thread-1", "langgraph_auth_user_id": "alice"},
            }
            print(f"user: {question}")
            stream = agent.astream(  # pyright: ignore[reportUnknownMemberType]
                {"messages": [HumanMessage(question)]}, config, stream_mode=["updates", "custom"]
            )
            async for mode, chunk in stream:
                if mode == "custom":  # a tool call's progress
                    event = cast(dict[str, Any], chunk)
                    print(f"  progress of {event['tool']}: {event['progress']:g}/{event['total']:g}")
                    continue
                for update in cast(dict[str, dict[str, Any] | None], chunk).values():  # {node: update}
                    for message in cast(list[BaseMessage], (update or {}).get("messages", [])):
                        show(message)


def show(message: BaseMessage) -> None:
    """Print one message of the run: the model's tool calls or answer, or a tool's result."""
    if isinstance(message, AIMessage) and message.tool_calls:
        print("  calls " + ", ".join(f"{call['name']} {call['args']}" for call in message.tool_calls))
    else:
        print(f"  {message.type}: {message.text}")


if __name__ == "__main__":
    anyio.run(main)
