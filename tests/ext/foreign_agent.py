"""An A2A agent built only with a2a-sdk's server classes (no skillq), for
``ctx.call`` tests: ``python foreign_agent.py PORT``.

Skills (named in the message metadata key ``skill``): ``upper`` answers the
text of its args in upper case as an artifact; ``forever`` works until it is
cancelled.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    Task,
    TaskState,
    TaskStatus,
)
from google.protobuf import json_format
from starlette.applications import Starlette


class Executor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        await event_queue.enqueue_event(
            Task(
                id=context.task_id,
                context_id=context.context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
            )
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        skill = json_format.MessageToDict(context.message.metadata).get("skill")
        args = {}
        for part in context.message.parts:
            if part.HasField("data"):
                args = json_format.MessageToDict(part.data)
        await updater.start_work()
        if skill == "upper":
            await updater.add_artifact(
                [Part(text=str(args.get("text", "")).upper())], name="answer"
            )
            await updater.complete()
        elif skill == "forever":
            await asyncio.Event().wait()  # until the framework cancels this task
        else:
            await updater.failed(updater.new_agent_message([Part(text=f"no skill {skill!r}")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def app(port: int) -> Starlette:
    card = AgentCard(
        name="foreign",
        description="An agent that is not skillq.",
        version="1",
        supported_interfaces=[
            AgentInterface(
                url=f"http://127.0.0.1:{port}/rpc",
                protocol_binding="JSONRPC",
                protocol_version="1.0",
            )
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["application/json"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="upper", name="upper", description="Upper-case text.", tags=["text"]),
            AgentSkill(id="forever", name="forever", description="Never ends.", tags=["slow"]),
        ],
    )
    handler = DefaultRequestHandler(Executor(), InMemoryTaskStore(), card)
    return Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")]
    )


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app(port), host="127.0.0.1", port=port, log_level="warning")
