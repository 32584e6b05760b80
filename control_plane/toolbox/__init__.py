"""The developer's MCP toolbox: the agents their keys list as tools on the gateway's `/mcp`."""
