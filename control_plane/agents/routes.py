"""Agent routes: path → handler. Creators only, and only on their own agents (403 `40302`
on another creator's, 404 `40401` on an unknown one)."""

from __future__ import annotations

from control_plane.agents import service
from control_plane.agents.schemas import (
    AgentDetail,
    AgentList,
    AgentOut,
    CreateAgentRequest,
    ListAgentsQuery,
    UpdateAgentRequest,
    VersionDetail,
    VersionList,
)
from control_plane.api import Context, RouteGroup
from control_plane.auth.principal import UserType
from control_plane.schema_types import PageQuery


async def create_agent(context: Context, body: CreateAgentRequest) -> AgentDetail:
    return await service.create_agent(context.state, context.user, body)


async def list_own_agents(context: Context, query: ListAgentsQuery) -> AgentList:
    return await service.list_agents(context.state, context.user, query)


async def get_own_agent(context: Context) -> AgentDetail:
    return await service.get_agent(context.state, context.user, context.path["agent_id"])


async def update_own_agent(context: Context, body: UpdateAgentRequest) -> AgentDetail:
    agent_id = context.path["agent_id"]
    return await service.update_agent(context.state, context.user, agent_id, body)


async def list_agent_versions(context: Context, query: PageQuery) -> VersionList:
    agent_id = context.path["agent_id"]
    return await service.list_versions(context.state, context.user, agent_id, query)


async def get_agent_version(context: Context) -> VersionDetail:
    path = context.path
    return await service.get_version(context.state, context.user, path["agent_id"],
                                     path["version"])  # fmt: skip


async def rollback_agent(context: Context) -> AgentDetail:
    path = context.path
    return await service.rollback(context.state, context.user, path["agent_id"], path["version"])


async def publish_agent(context: Context) -> AgentOut:
    return await service.publish(context.state, context.user, context.path["agent_id"])


async def unpublish_agent(context: Context) -> AgentOut:
    return await service.unpublish(context.state, context.user, context.path["agent_id"])


PREFIX = "/api/v1/agents"
_GROUP = RouteGroup(PREFIX, frozenset({UserType.CREATOR}), "agents")
ONE = "/{agent_id}"
ROUTES = [
    _GROUP.route("POST", "", create_agent, "Create a draft agent (version 1)",
                 body=CreateAgentRequest, response=AgentDetail, status=201),
    _GROUP.route("GET", "", list_own_agents, "The calling creator's agents, newest first",
                 query=ListAgentsQuery, response=AgentList),
    _GROUP.route("GET", ONE, get_own_agent, "One of the caller's agents, with its current config",
                 response=AgentDetail),
    _GROUP.route("PUT", ONE, update_own_agent,
                 "Change an agent (fields left out keep their values); makes a new version",
                 body=UpdateAgentRequest, response=AgentDetail),
    _GROUP.route("GET", f"{ONE}/versions", list_agent_versions,
                 "The agent's versions, newest first (no configs)",
                 query=PageQuery, response=VersionList),
    _GROUP.route("GET", f"{ONE}/versions/{{version}}", get_agent_version,
                 "One version of the agent, with its config", response=VersionDetail),
    _GROUP.route("POST", f"{ONE}/versions/{{version}}/rollback", rollback_agent,
                 "Make a new version with this version's config (history is append-only)",
                 response=AgentDetail),
    _GROUP.route("POST", f"{ONE}/publish", publish_agent,
                 "Publish: the agent is callable through the gateway from the next request",
                 response=AgentOut),
    _GROUP.route("POST", f"{ONE}/unpublish", unpublish_agent,
                 "Unpublish: the gateway refuses the agent from the next request",
                 response=AgentOut),
]  # fmt: skip
