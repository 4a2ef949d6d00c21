"""A scripted agent that speaks MCP through the official SDK's client (`mcp` on PyPI), for the tests.

It connects to an MCP endpoint over streamable HTTP with a Frappe API key, pings, lists the tools,
calls the ones it is given in order and prints what it saw as one JSON object. In a call's
arguments the text "$task" stands for the first task the latest `tasks_claim` returned. Run it with
a Python that has the SDK (a venv of its own: the SDK needs a newer pydantic than Frappe 15 pins),
never inside Frappe:

	python mcp_probe.py URL --token KEY:SECRET [--mode legacy|auto] [--header NAME:VALUE]
		[--call NAME JSON_ARGUMENTS]...
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path


async def probe(url: str, headers: dict, mode: str, calls: list[tuple[str, dict]]) -> dict:
	from mcp import Client
	from mcp.client.streamable_http import streamable_http_client
	from mcp.shared._httpx_utils import create_mcp_http_client
	from mcp.shared.exceptions import MCPError

	report: dict = {"calls": []}
	async with create_mcp_http_client(headers=headers) as http:
		async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
			report["protocol_version"] = client.protocol_version
			info = client.server_info
			report["server"] = {"name": info.name, "version": info.version} if info else None
			await client.send_ping()
			listed = await client.list_tools()
			report["tools"] = {
				tool.name: tool.model_dump(mode="json", by_alias=True) for tool in listed.tools
			}
			task = None
			for name, arguments in calls:
				arguments = json.loads(json.dumps(arguments).replace('"$task"', json.dumps(task)))
				entry = {"name": name, "arguments": arguments}
				try:
					result = await client.call_tool(name, arguments)
				except MCPError as e:
					entry["error"] = {"code": e.code, "message": e.error.message}
				else:
					entry["is_error"] = result.is_error
					entry["text"] = " ".join(getattr(block, "text", "") for block in result.content)
					entry["structured"] = result.structured_content
					if name == "tasks_claim" and not result.is_error:
						claimed = (result.structured_content or {}).get("result") or []
						task = claimed[0]["name"] if claimed else None
				report["calls"].append(entry)
	return report


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("url")
	parser.add_argument("--token", required=True, help="API key and secret, key:secret")
	parser.add_argument("--mode", default="legacy", help="legacy (initialize) or auto (discover first)")
	parser.add_argument("--header", action="append", default=[], help="NAME:VALUE, another header")
	parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON"))
	args = parser.parse_args()
	# This file's folder holds cauldron/aether/mcp.py, which would shadow the SDK's `mcp` package.
	sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
	headers = {"Authorization": f"token {args.token}"}
	for header in args.header:
		name, _, value = header.partition(":")
		headers[name.strip()] = value.strip()
	calls = [(name, json.loads(arguments)) for name, arguments in args.call]
	print(json.dumps(asyncio.run(probe(args.url, headers, args.mode, calls)), default=str))


if __name__ == "__main__":
	main()
