#!/usr/bin/env python3
"""The demo's voice conversation: what an ElevenLabs agent connected over MCP sends while Dana
talks to it — through the official MCP Python SDK, PostgREST's /rest/v1/rpc/mcp (the test
gateway stands in for it) and Dana's JWT. Prints each utterance, tool call and result.

  demo_voice.py URL APIKEY JWT TOMORROW(YYYY-MM-DD) DANA_USER_ID
"""
import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url, apikey, jwt, tomorrow, dana):
    headers = {"apikey": apikey, "Authorization": f"Bearer {jwt}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write, *_):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                print(f"  agent connected: {init.server_info.name} {init.server_info.version}, MCP {init.protocol_version}, {len(tools.tools)} tools")
                job = {}

                async def call(said, name, args):
                    print(f"\n  Dana: \u201c{said}\u201d")
                    print(f"  agent \u2192 tools/call {name} {json.dumps(args)}")
                    r = await session.call_tool(name, args)
                    out = r.structured_content or {}
                    print(f"  \u2190 {'isError ' if r.is_error else ''}{json.dumps(out)[:400]}")
                    return out

                r = await call("Create a job for John tomorrow at 9, a leaking kitchen faucet.", "create_job",
                               {"description": "Leaking kitchen faucet", "contactName": "John",
                                "scheduledStart": f"{tomorrow}T09:00", "techAssignedId": dana})
                if r.get("candidates"):
                    print("  agent: \u201cI found " + ", ".join(c["name"] for c in r["candidates"]) + ". Which John?\u201d")
                    job = await call("John Smith.", "create_job",
                                     {"description": "Leaking kitchen faucet", "contactName": "John Smith",
                                      "scheduledStart": f"{tomorrow}T09:00", "techAssignedId": dana})
                await call("What's my schedule tomorrow?", "get_schedule", {"date": tomorrow})
                contact = job.get("contact", {})
                print("  agent: \u201cI'll email John the appointment reminder for tomorrow at 9. Shall I send it?\u201d  Dana: \u201cYes.\u201d")
                await call("Send him the appointment reminder.", "send_appointment_reminder",
                           {"appointmentId": job.get("jobId"), "customerEmail": contact.get("email"),
                            "scheduledAt": f"{tomorrow}T09:00", "rescheduleUrl": "https://app.317plumber.com/reschedule"})


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
