"""Drives toolgate's A2A endpoint with the official Python a2a-sdk client.

Reads a plan from stdin: {"url": base URL, "token": caller's bearer, "approver": approver's
bearer}. Runs the scenario below and prints one JSON report on stdout; the Rust test asserts on
it. Every step records what the client saw (states, artifacts, errors), never a verdict.
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf import json_format

from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.types.a2a_pb2 import (
    AgentCard,
    AgentInterface,
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    SendMessageRequest,
)

LIST_PODS = {"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}}
RESTART = {
    "tool": "k8s.rollout_restart",
    "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"},
}


def message(call, as_text=False):
    part = {"text": json.dumps(call)} if as_text else {"data": call}
    return json_format.ParseDict(
        {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [part]}, Message()
    )


def to_dict(msg):
    return json_format.MessageToDict(msg)


def state_of(event):
    if event.HasField("task"):
        return to_dict(event.task)["status"]["state"]
    if event.HasField("status_update"):
        return to_dict(event.status_update)["status"]["state"]
    if event.HasField("artifact_update"):
        return "ARTIFACT"
    return "MESSAGE"


async def send_once(client, call, as_text=False):
    events = []
    async for event in client.send_message(SendMessageRequest(message=message(call, as_text))):
        events.append(event)
    return to_dict(events[-1].task)


async def main():
    plan = json.load(sys.stdin)
    base, token, approver = plan["url"], plan["token"], plan["approver"]
    report = {}
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as http, httpx.AsyncClient(
        headers={"Authorization": f"Bearer {approver}"}, timeout=30
    ) as approver_http:
        card = await A2ACardResolver(http, base).get_agent_card()
        report["card"] = to_dict(card)

        # 1.0, blocking: a read tool completes with its result as an artifact.
        blocking = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        report["read_v1"] = await send_once(blocking, LIST_PODS)
        # The same call as a text part holding the JSON.
        report["read_v1_text"] = await send_once(blocking, LIST_PODS, as_text=True)
        # Prose is not a tool call: the task fails and says what to send.
        report["prose"] = await send_once(blocking, {"not": "a call"})

        # 0.3: the same card with only its 0.3 interface, so the SDK picks its 0.3 transport.
        legacy_card = AgentCard()
        legacy_card.CopyFrom(card)
        del legacy_card.supported_interfaces[:]
        for iface in card.supported_interfaces:
            if iface.protocol_version.startswith("0.3"):
                legacy_card.supported_interfaces.append(AgentInterface(**{
                    "url": iface.url,
                    "protocol_binding": iface.protocol_binding,
                    "protocol_version": iface.protocol_version,
                }))
        legacy = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(legacy_card)
        report["read_v03"] = await send_once(legacy, LIST_PODS)
        report["get_v03"] = to_dict(
            await legacy.get_task(GetTaskRequest(id=report["read_v03"]["id"]))
        )

        # 1.0 streaming: a write tool waits in AUTH_REQUIRED; a human approves over REST; the
        # same stream then reports the call's completion and its result.
        streaming = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        states, approval_id, stream_task_id, artifact = [], None, None, None
        async for event in streaming.send_message(SendMessageRequest(message=message(RESTART))):
            state = state_of(event)
            states.append(state)
            if event.HasField("task"):
                stream_task_id = event.task.id
            if event.HasField("artifact_update"):
                artifact = to_dict(event.artifact_update)["artifact"]
            if state == "TASK_STATE_AUTH_REQUIRED" and approval_id is None:
                status = to_dict(event.status_update)["status"]
                report["auth_required_status"] = status
                approval_id = status["message"]["parts"][1]["data"]["approval_id"]
                r = await approver_http.post(
                    f"{base}/api/v1/approvals/{approval_id}/approve", json={}
                )
                report["approve_http_status"] = r.status_code
        report["stream_states"] = states
        report["stream_artifact"] = artifact
        report["stream_task"] = to_dict(await streaming.get_task(GetTaskRequest(id=stream_task_id)))

        # A pending write is cancelled through CancelTask: the approval is withdrawn.
        pending = await send_once(blocking, RESTART)
        report["pending"] = pending
        report["cancelled"] = to_dict(await blocking.cancel_task(CancelTaskRequest(id=pending["id"])))
        approval = await approver_http.get(
            f"{base}/api/v1/approvals/{pending['metadata']['approvalId']}"
        )
        report["cancelled_approval_state"] = approval.json().get("state")
        try:
            await blocking.cancel_task(CancelTaskRequest(id=pending["id"]))
            report["cancel_again"] = "no error"
        except Exception as e:  # noqa: BLE001 - the report names the class
            report["cancel_again"] = type(e).__name__

        # Unknown task: the SDK maps -32001 to its TaskNotFoundError.
        try:
            await blocking.get_task(GetTaskRequest(id="no-such-task"))
            report["unknown_task"] = "no error"
        except Exception as e:  # noqa: BLE001
            report["unknown_task"] = type(e).__name__

        listed = await blocking.list_tasks(ListTasksRequest(page_size=100))
        report["listed"] = to_dict(listed)
    print(json.dumps(report))


asyncio.run(main())
