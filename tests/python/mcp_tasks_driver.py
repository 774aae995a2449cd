"""A tasks client (`io.modelcontextprotocol/tasks`, SEP-2663) on the official Python MCP SDK.

The SDK ships no tasks client, but its extension API does the protocol work: a ClientExtension
advertises the capability in each 2026-07-28 request and claims `resultType: "task"`, and its
resolver polls `tasks/get` until the task ends, so `Client.call_tool` returns the final
CallToolResult as for any call. The SDK validates every result against its models.

Plan on stdin: {"url", "token", "tool", "arguments", "approve": {"url", "token"}}: call `tool`
as `token`; when the first poll shows the task, approve it over the REST URL as the approver.
Prints one JSON report: the task as created, the statuses polled, and the final result (or the
task that ended without one).
"""

import asyncio
import json
import sys
from typing import Any, Literal

import httpx2
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Request, RequestParams, Result

TASKS = "io.modelcontextprotocol/tasks"


class CreateTaskResult(Result):
    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class GetTaskParams(RequestParams):
    task_id: str


class GetTaskRequest(Request[GetTaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class GetTaskResult(Result):
    result_type: Literal["complete"] = "complete"
    task_id: str
    status: str
    status_message: str | None = None
    ttl_ms: int | None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskEnded(Exception):
    def __init__(self, task: GetTaskResult):
        super().__init__(task.status)
        self.task = task


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Tasks(ClientExtension):
    identifier = TASKS

    def __init__(self, report: dict, on_first_poll):
        self.report = report
        self.on_first_poll = on_first_poll

    def claims(self):
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.follow)]

    async def follow(self, created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        self.report["created"] = dump(created)
        self.report["polled"] = []
        for attempt in range(200):
            task = await ctx.session.send_request(
                GetTaskRequest(params=GetTaskParams(task_id=created.task_id)), GetTaskResult
            )
            self.report["polled"].append({"status": task.status, "statusMessage": task.status_message})
            if task.status == "completed":
                return CallToolResult.model_validate(task.result)
            if task.status in ("failed", "cancelled"):
                raise TaskEnded(task)
            if attempt == 0:
                await self.on_first_poll(created.task_id)
            # The server suggests its interval; a test does not wait that long.
            await asyncio.sleep(min((task.poll_interval_ms or 1000) / 1000, 0.2))
        raise TimeoutError("the task did not end")


async def main():
    plan = json.load(sys.stdin)
    report: dict = {}
    approve = plan["approve"]

    async def approve_it(task_id):
        async with httpx2.AsyncClient() as http:
            resp = await http.post(
                f"{approve['url']}/api/v1/approvals/{task_id}/approve",
                headers={"Authorization": f"Bearer {approve['token']}"},
                json={"reason": "checked"},
            )
            report["approved"] = resp.status_code

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {plan['token']}"})
    async with http:
        transport = streamable_http_client(plan["url"], http_client=http)
        async with Client(transport, mode="2026-07-28", extensions=[Tasks(report, approve_it)]) as client:
            await client.list_tools()
            try:
                result = await client.call_tool(plan["tool"], plan["arguments"])
                report["result"] = dump(result)
            except TaskEnded as ended:
                report["ended"] = dump(ended.task)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
