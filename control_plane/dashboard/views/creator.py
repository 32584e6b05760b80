"""Creator studio: overview, agents (create, edit with the prompt editor, versions with diff
and rollback, publish/unpublish), profile and wallet. Every call goes through the agents and
creators services, which check ownership: another creator's agent is a 403, whatever the id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.agents import service as agents
from control_plane.agents.schemas import (
    AgentDetail,
    CreateAgentRequest,
    ListAgentsQuery,
    UpdateAgentRequest,
)
from control_plane.analytics import service as analytics
from control_plane.analytics.schemas import AnalyticsQuery
from control_plane.creators import service as creators
from control_plane.creators.schemas import UpdateCreatorRequest, WalletRequest
from control_plane.dashboard import diff
from control_plane.dashboard.forms import Errors, blank_to_none, convert, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.dashboard.views.public import pricing_facts
from control_plane.earnings import service as earnings
from control_plane.schema_types import PageQuery

CREATORS = frozenset({UserType.CREATOR})
PROVIDERS = ("openai", "anthropic", "google")
_LISTING = ("name", "description", "category", "price_per_call")
_PLAIN_CONFIG = ("system_prompt", "provider", "model", "temperature", "max_tokens", "top_p")
_KNOWLEDGE = ("chunk_size", "chunk_overlap", "top_k")


# -- form <-> request ------------------------------------------------------------------------


def _fallbacks(text: str) -> list[dict[str, str]] | str:
    """One "provider/model" per line; a string is the error to show."""
    targets = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        provider, slash, model = line.partition("/")
        if not slash or provider.strip() not in PROVIDERS or not model.strip():
            return f"Write one provider/model per line (providers: {', '.join(PROVIDERS)})."
        targets.append({"provider": provider.strip(), "model": model.strip()})
    return targets


def _desired(ctx: PageContext, errors: Errors) -> dict[str, Any]:
    """The agent the form describes, as a CreateAgentRequest-shaped dict."""
    form = ctx.form
    fallbacks = _fallbacks(form["fallbacks"])
    if isinstance(fallbacks, str):
        errors["fallbacks"] = fallbacks
        fallbacks = []
    config: dict[str, Any] = {name: form[name] for name in _PLAIN_CONFIG}
    for name in ("temperature", "max_tokens", "top_p"):
        config[name] = form[name].strip() or None
    config["leak_guard"] = "leak_guard" in form
    config["prompt_cache"] = "prompt_cache" in form
    config["fallbacks"] = fallbacks
    knowledge: dict[str, Any] = {name: form[name] for name in _KNOWLEDGE if form[name].strip()}
    knowledge["enabled"] = "knowledge_enabled" in form
    config["knowledge"] = knowledge
    listing: dict[str, Any] = {name: form[name] for name in _LISTING}
    listing["description"] = form["description"] or None
    listing["category"] = form["category"].strip() or None
    return {**listing, "config": config}


def _form_values(agent: AgentDetail | None) -> dict[str, Any]:
    if agent is None:
        return {"provider": "openai", "leak_guard": True, "chunk_size": 1000,
                "chunk_overlap": 200, "top_k": 5}  # fmt: skip
    config = agent.config
    return {
        "name": agent.name,
        "description": agent.description or "",
        "category": agent.category or "",
        "price_per_call": agent.price_per_call,
        "system_prompt": config.system_prompt,
        "provider": config.provider,
        "model": config.model,
        "temperature": "" if config.temperature is None else config.temperature,
        "max_tokens": "" if config.max_tokens is None else config.max_tokens,
        "top_p": "" if config.top_p is None else config.top_p,
        "leak_guard": config.leak_guard,
        "prompt_cache": config.prompt_cache,
        "fallbacks": "\n".join(f"{t.provider}/{t.model}" for t in config.fallbacks),
        "knowledge_enabled": config.knowledge.enabled,
        "chunk_size": config.knowledge.chunk_size,
        "chunk_overlap": config.knowledge.chunk_overlap,
        "top_k": config.knowledge.top_k,
    }


def _posted_values(ctx: PageContext) -> dict[str, Any]:
    values: dict[str, Any] = ctx.form.as_dict()
    values["leak_guard"] = "leak_guard" in ctx.form
    values["prompt_cache"] = "prompt_cache" in ctx.form
    values["knowledge_enabled"] = "knowledge_enabled" in ctx.form
    return values


def _patch(current: AgentDetail, wanted: CreateAgentRequest) -> dict[str, Any]:
    """Only what the form changed: an unchanged form makes no new version."""
    patch: dict[str, Any] = {}
    for name in ("name", "description", "category"):
        if getattr(wanted, name) != getattr(current, name):
            patch[name] = getattr(wanted, name)
    if wanted.price_per_call != Decimal(current.price_per_call):
        patch["price_per_call"] = str(wanted.price_per_call)
    config: dict[str, Any] = {}
    for name in (*_PLAIN_CONFIG, "leak_guard", "prompt_cache"):
        if getattr(wanted.config, name) != getattr(current.config, name):
            config[name] = getattr(wanted.config, name)
    if wanted.config.fallbacks != current.config.fallbacks:
        config["fallbacks"] = [{"provider": t.provider, "model": t.model}
                               for t in wanted.config.fallbacks]  # fmt: skip
    knowledge = {
        name: getattr(wanted.config.knowledge, name)
        for name in ("enabled", *_KNOWLEDGE)
        if getattr(wanted.config.knowledge, name) != getattr(current.config.knowledge, name)
    }
    if knowledge:
        config["knowledge"] = knowledge
    if config:
        patch["config"] = config
    return patch


# -- pages -----------------------------------------------------------------------------------


async def overview(ctx: PageContext) -> Response:
    profile = await creators.get_me(ctx.state, ctx.user)
    listing = await agents.list_agents(ctx.state, ctx.user, ListAgentsQuery(page_size=100))
    counts: dict[str, int] = {}
    for agent in listing.items:
        counts[agent.status] = counts.get(agent.status, 0) + 1
    return ctx.render(
        "creator/overview.html", profile=profile, agents=listing.items, total=listing.total,
        counts=counts, calls=sum(agent.total_calls for agent in listing.items),
        balances=await earnings.balances(ctx.state, ctx.user),
        month=(await analytics.creator_analytics(ctx.state, ctx.user, AnalyticsQuery())).totals,
    )  # fmt: skip


async def agent_list(ctx: PageContext) -> Response:
    wanted = ctx.query.get("status", "")
    raw_page = ctx.query.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) <= 100_000 else 1
    query: ListAgentsQuery = convert(
        blank_to_none({"status": wanted, "page": page, "page_size": 20}), ListAgentsQuery
    )
    listing = await agents.list_agents(ctx.state, ctx.user, query)
    return ctx.render("creator/agents.html", listing=listing, status_filter=wanted)


def _agent_form(
    ctx: PageContext, agent: AgentDetail | None, values: dict[str, Any], errors: Errors,
    status: int = 200,
) -> Response:  # fmt: skip
    return ctx.render(
        "creator/agent_form.html", agent=agent, values=values, errors=errors,
        providers=PROVIDERS, status=status, **pricing_facts(ctx),
    )  # fmt: skip


async def new_agent_form(ctx: PageContext) -> Response:
    return _agent_form(ctx, None, _form_values(None), {})


async def create_agent(ctx: PageContext) -> Response:
    errors: Errors = {}
    desired = _desired(ctx, errors)
    if not errors:
        try:
            request: CreateAgentRequest = convert(desired, CreateAgentRequest)
            created = await agents.create_agent(ctx.state, ctx.user, request)
        except ApiError as error:
            errors = form_errors(error, ErrorCode.VALIDATION_FAILED)
    if errors:
        return _agent_form(ctx, None, _posted_values(ctx), errors, status=400)
    return ctx.redirect(
        f"/creator/agents/{created.id}",
        notice=f"Created “{created.name}” as a draft (version 1). Publish it when it is ready.",
    )


async def edit_agent_form(ctx: PageContext) -> Response:
    agent = await agents.get_agent(ctx.state, ctx.user, ctx.path["agent_id"])
    return _agent_form(ctx, agent, _form_values(agent), {})


async def update_agent(ctx: PageContext) -> Response:
    current = await agents.get_agent(ctx.state, ctx.user, ctx.path["agent_id"])
    errors: Errors = {}
    desired = _desired(ctx, errors)
    if not errors:
        try:
            wanted: CreateAgentRequest = convert(desired, CreateAgentRequest)
            patch = _patch(current, wanted)
            if not patch:
                return ctx.redirect(f"/creator/agents/{current.id}", notice="Nothing changed.")
            request: UpdateAgentRequest = convert(patch, UpdateAgentRequest)
            updated = await agents.update_agent(ctx.state, ctx.user, current.id, request)
        except ApiError as error:
            errors = form_errors(error, ErrorCode.VALIDATION_FAILED)
    if errors:
        return _agent_form(ctx, current, _posted_values(ctx), errors, status=400)
    return ctx.redirect(
        f"/creator/agents/{updated.id}", notice=f"Saved as version {updated.version}."
    )


async def publish(ctx: PageContext) -> Response:
    agent = await agents.publish(ctx.state, ctx.user, ctx.path["agent_id"])
    return ctx.redirect(
        f"/creator/agents/{agent.id}", notice="Published: the agent answers calls from now on."
    )


async def unpublish(ctx: PageContext) -> Response:
    agent = await agents.unpublish(ctx.state, ctx.user, ctx.path["agent_id"])
    return ctx.redirect(
        f"/creator/agents/{agent.id}", notice="Unpublished: the gateway refuses it from now on."
    )


async def versions(ctx: PageContext) -> Response:
    agent = await agents.get_agent(ctx.state, ctx.user, ctx.path["agent_id"])
    history = await agents.list_versions(ctx.state, ctx.user, agent.id, PageQuery(page_size=100))
    return ctx.render("creator/versions.html", agent=agent, versions=history.items,
                      total=history.total)  # fmt: skip


async def version_diff(ctx: PageContext) -> Response:
    agent = await agents.get_agent(ctx.state, ctx.user, ctx.path["agent_id"])
    old_number = ctx.query.get("from") or str(max(1, agent.version - 1))
    new_number = ctx.query.get("to") or str(agent.version)
    old = await agents.get_version(ctx.state, ctx.user, agent.id, old_number)
    new = await agents.get_version(ctx.state, ctx.user, agent.id, new_number)
    return ctx.render("creator/diff.html", agent=agent, diff=diff.compare(old, new))


async def rollback(ctx: PageContext) -> Response:
    agent_id, version = ctx.path["agent_id"], ctx.path["version"]
    agent = await agents.rollback(ctx.state, ctx.user, agent_id, version)
    return ctx.redirect(
        f"/creator/agents/{agent.id}/versions",
        notice=f"Rolled back: version {agent.version} has version {version}'s configuration.",
    )


async def profile_form(ctx: PageContext) -> Response:
    profile = await creators.get_me(ctx.state, ctx.user)
    values = {"display_name": profile.display_name, "bio": profile.bio or "",
              "avatar_url": profile.avatar_url or "",
              "wallet_address": profile.wallet_address or ""}  # fmt: skip
    return ctx.render("creator/profile.html", profile=profile, values=values, errors={})


async def update_profile(ctx: PageContext) -> Response:
    values = {name: ctx.form[name] for name in ("display_name", "bio", "avatar_url",
                                                "wallet_address")}  # fmt: skip
    try:
        changes: dict[str, Any] = {"display_name": values["display_name"],
                                   "bio": values["bio"] or None,
                                   "avatar_url": values["avatar_url"].strip() or None}  # fmt: skip
        await creators.update_me(ctx.state, ctx.user, convert(changes, UpdateCreatorRequest))
        current = await creators.get_me(ctx.state, ctx.user)
        wallet = values["wallet_address"].strip()
        if wallet and wallet != current.wallet_address:
            await creators.set_wallet(ctx.state, ctx.user, convert(
                {"wallet_address": wallet}, WalletRequest))  # fmt: skip
    except ApiError as error:
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED)
        profile = await creators.get_me(ctx.state, ctx.user)
        return ctx.render("creator/profile.html", profile=profile, values=values,
                          errors=errors, status=400)  # fmt: skip
    return ctx.redirect("/creator/profile", notice="Profile saved.")


ONE = "/creator/agents/{agent_id}"
PAGES = [
    Page("GET", "/creator", overview, users=CREATORS),
    Page("GET", "/creator/agents", agent_list, users=CREATORS),
    Page("GET", "/creator/agents/new", new_agent_form, users=CREATORS),
    Page("POST", "/creator/agents/new", create_agent, users=CREATORS),
    Page("GET", ONE, edit_agent_form, users=CREATORS),
    Page("POST", ONE, update_agent, users=CREATORS),
    Page("POST", f"{ONE}/publish", publish, users=CREATORS),
    Page("POST", f"{ONE}/unpublish", unpublish, users=CREATORS),
    Page("GET", f"{ONE}/versions", versions, users=CREATORS),
    Page("GET", f"{ONE}/versions/diff", version_diff, users=CREATORS),
    Page("POST", f"{ONE}/versions/{{version}}/rollback", rollback, users=CREATORS),
    Page("GET", "/creator/profile", profile_form, users=CREATORS),
    Page("POST", "/creator/profile", update_profile, users=CREATORS),
]
