-- The developer's MCP toolbox: the agents a developer has chosen to see as tools when an MCP
-- client lists the gateway's tools with one of their keys (gateway/mcp). A key with its own
-- agent allow-list lists those agents instead. Listing is the only thing the toolbox decides:
-- whether a call is admitted is admission's business, as for every chat call.
--
-- Managed through /api/v1/developers/toolbox; at most a hundred agents per developer (the
-- service enforces it), listed in the order they were added.

CREATE TABLE developer_toolbox (
    user_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id  UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    added_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, agent_id)
);
CREATE INDEX developer_toolbox_order_idx ON developer_toolbox (user_id, added_at, agent_id);
CREATE INDEX developer_toolbox_agent_idx ON developer_toolbox (agent_id);
