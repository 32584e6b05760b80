"""Agents as MCP tools: the gateway's `/mcp` endpoint (Model Context Protocol, Streamable HTTP).

Not the official SDK's server: it runs every request through anyio memory streams, a task
group and pydantic models of every message, which is more machinery per call than the whole
chat hot path (DESIGN.md's budget): `python -m loadtests.mcp_load` measured its tool that does
nothing at 3.2 times the CPU of our whole tool call (admission, provider, guard, commit).
The subset served here is small and written against the specification (revisions 2025-03-26
to 2025-11-25): `initialize`, `notifications/initialized`, `ping`, `tools/list`, `tools/call`
with progress notifications; JSON or SSE answers; sessions by `Mcp-Session-Id`. The tests
drive it with the official `mcp` client.

- `protocol`: JSON-RPC framing, versions, sessions, the mapping of our error codes
- `tools`: which agents a key sees as tools, their names and input schemas
- `endpoint`: the ASGI endpoint: authentication, session check, dispatch
- `call`: `tools/call` through the chat pipeline (gateway/proxy.py `call_agent`)
- `edge`: the answer as a tool result, streamed as progress notifications or not
- `marketplace`: the `marketplace_search` tool
"""
