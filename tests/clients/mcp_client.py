#!/usr/bin/env python3
"""lalo's MCP server driven by the official MCP Python SDK, over stdio and streamable HTTP.

Prints `ok <transport>: <check>` per check; exits non-zero if any check failed.
"""
import argparse
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
try:  # mcp >= 2: the HTTP client is passed in
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
except ImportError:  # mcp 1.x
    create_mcp_http_client = None
    from mcp.client.streamable_http import streamablehttp_client

FAILED = []


def check(transport, name, cond, detail=""):
    if cond:
        print(f"ok {transport}: {name}")
    else:
        print(f"FAIL {transport}: {name}: {detail}")
        FAILED.append(name)


def attr(obj, snake, camel):
    """mcp 2.x names fields in snake_case, mcp 1.x in camelCase."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


def is_error(result):
    return bool(attr(result, "is_error", "isError"))


def payload(result):
    structured = attr(result, "structured_content", "structuredContent")
    if structured is not None:
        return structured
    return json.loads(result.content[0].text)


async def exercise(session, transport):
    await session.initialize()
    tools = sorted(t.name for t in (await session.list_tools()).tools)
    check(transport, "lists six tools", tools == ["ask", "describe_table", "explain", "list_tables", "query", "search_schema"], tools)
    r = await session.call_tool("list_tables", {"schema": "tpch"})
    check(transport, "list_tables shows tpch", not is_error(r) and len(payload(r)["tables"]) == 8, r)
    r = await session.call_tool("describe_table", {"table": "tpch.customer"})
    cols = [c["name"] for c in payload(r)["columns"]]
    check(transport, "describe_table hides denied column", "c_name" in cols and "c_acctbal" not in cols, cols)
    r = await session.call_tool("search_schema", {"question": "order priority and order date"})
    check(transport, "search_schema finds orders", payload(r)["results"][0]["table"] == "tpch.orders", payload(r))
    r = await session.call_tool("query", {"sql": "SELECT count(*) AS n FROM tpch.nation"})
    check(transport, "query returns rows", not is_error(r) and payload(r)["rows"] == [{"n": 25}], payload(r))
    r = await session.call_tool("query", {"sql": "SELECT c_acctbal FROM tpch.customer"})
    check(transport, "denied column gives 42501", is_error(r) and payload(r).get("sqlstate") == "42501", r)
    r = await session.call_tool("explain", {"input": "SELECT * FROM tpch.region"})
    check(transport, "explain shows the plan", not is_error(r) and "TableScan" in payload(r)["plan"], r)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lalo", required=True, help="path to the lalo binary (stdio transport)")
    p.add_argument("--user", default="intern")
    p.add_argument("--url", required=True, help="streamable HTTP endpoint, e.g. http://127.0.0.1:6480/mcp")
    p.add_argument("--token", required=True)
    a = p.parse_args()

    params = StdioServerParameters(command=a.lalo, args=["mcp", "--user", a.user], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")

    headers = {"Authorization": f"Bearer {a.token}"}
    if create_mcp_http_client is not None:
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(a.url, http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await exercise(session, "http")
    else:
        async with streamablehttp_client(a.url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                await exercise(session, "http")

    print(f"{7 * 2 - len(FAILED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    asyncio.run(main())
