"""Drive toolgate with the official Python MCP SDK client.

Reads a plan from stdin: {"transport": "stdio"|"http", "command": [...], "url": "...",
"calls": [{"name": ..., "arguments": {...}}], "follow_cursor": {"name":..., "arguments":...}}
and prints one JSON report on stdout: negotiated protocol version, server info, the tools as
listed, and each call's outcome. An argument given as "$approval_id" is replaced by the
`approval_id` of the last answer that held a call. The SDK checks each structured answer against
the tool's listed outputSchema (a mismatch is an error). The Rust integration tests assert on
that report.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run_session(session, plan):
    init = dump(await session.initialize())
    tools = dump(await session.list_tools())
    report = {
        "protocolVersion": init["protocolVersion"],
        "serverInfo": init["serverInfo"],
        "tools": tools["tools"],
        "results": [],
    }
    approval_id = None
    for call in plan.get("calls", []):
        arguments = {
            k: (approval_id if v == "$approval_id" else v) for k, v in (call.get("arguments") or {}).items()
        }
        try:
            result = dump(await session.call_tool(call["name"], arguments))
            held = result.get("structuredContent") or {}
            if held.get("status") == "approval_required":
                approval_id = held.get("approval_id")
            report["results"].append(
                {
                    "isError": bool(result.get("isError")),
                    "structuredContent": result.get("structuredContent"),
                    "text": "".join(c.get("text", "") for c in result.get("content", [])),
                }
            )
        except MCPError as exc:
            err = dump(exc.error)
            report["results"].append({"protocolError": {"code": err.get("code"), "message": err.get("message")}})
    follow = plan.get("follow_cursor")
    if follow:
        pages = []
        args = dict(follow.get("arguments") or {})
        for _ in range(1000):
            result = dump(await session.call_tool(follow["name"], args))
            if result.get("isError"):
                pages.append({"isError": True, "text": result["content"][0].get("text")})
                break
            sc = result.get("structuredContent") or {}
            pages.append(sc)
            cursor = sc.get("cursor")
            if not cursor:
                break
            args = dict(follow.get("arguments") or {})
            args["cursor"] = cursor
        report["pages"] = pages
    return report


async def main():
    plan = json.load(sys.stdin)
    if plan["transport"] == "stdio":
        params = StdioServerParameters(command=plan["command"][0], args=plan["command"][1:], env=plan.get("env"))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                report = await run_session(session, plan)
    else:
        async with streamable_http_client(plan["url"]) as (read, write):
            async with ClientSession(read, write) as session:
                report = await run_session(session, plan)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
