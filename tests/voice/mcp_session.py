#!/usr/bin/env python3
"""An MCP session as an agent would hold it, with the official MCP Python SDK (not written
here) over streamable HTTP to PostgREST's /rest/v1/rpc/mcp (tests/gateway/postgrest.py):
initialize, tools/list, then the tool calls given on the command line. Prints one JSON line
per step for tests/shell/voice.sh to check.

  mcp_session.py URL APIKEY JWT '[["create_job", {...}], ["search_contacts", {...}]]'
"""
import asyncio
import json
import sys

import httpx2
import jsonschema
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url, apikey, jwt, calls):
    headers = {"apikey": apikey, "Authorization": f"Bearer {jwt}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write, *_):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                print(json.dumps({"step": "initialize", "protocolVersion": init.protocol_version,
                                  "server": init.server_info.name, "tools": init.capabilities.tools is not None}))
                listed = await session.list_tools()
                bad = []
                for t in listed.tools:
                    try:
                        jsonschema.Draft202012Validator.check_schema(t.input_schema)
                    except jsonschema.SchemaError as e:
                        bad.append(f"{t.name}: {e.message}")
                print(json.dumps({"step": "tools/list", "count": len(listed.tools), "schema_errors": bad,
                                  "names": sorted(t.name for t in listed.tools)}))
                for name, args in calls:
                    r = await session.call_tool(name, args)
                    print(json.dumps({"step": "tools/call", "tool": name, "isError": r.is_error,
                                      "result": r.structured_content,
                                      "text": r.content[0].text if r.content else None}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
