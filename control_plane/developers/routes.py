"""Developer routes: path → handler. Developers only."""

from __future__ import annotations

from starlette.responses import Response

from common.domain import UserType
from control_plane.api import Context, RouteGroup, json_response
from control_plane.developers import key_controls, service
from control_plane.developers.schemas import (
    ApiKeyOut,
    ApiKeyPage,
    CreatedApiKey,
    CreateKeyRequest,
    DeveloperProfile,
    KeyControlsPatch,
    KeyListQuery,
    RotateKeyRequest,
    TrialList,
    UsageQuery,
    UsageReport,
)

_DEVELOPERS = frozenset({UserType.DEVELOPER})


async def developer_profile(context: Context) -> DeveloperProfile:
    return await service.profile(context.state, context.user)


async def list_developer_keys(context: Context, query: KeyListQuery) -> ApiKeyPage:
    return await service.list_keys(context.state, context.user, query)


async def create_developer_key(context: Context, body: CreateKeyRequest) -> Response:
    created = await service.create_key(context.state, context.user, body)
    # The one response that carries a key's plaintext: no cache may keep it.
    return json_response(created, 201, headers={"Cache-Control": "no-store"})


async def revoke_developer_key(context: Context) -> None:
    await service.revoke_key(context.state, context.user, context.path["key_id"])


async def update_developer_key(context: Context, body: KeyControlsPatch) -> ApiKeyOut:
    return await key_controls.update_controls(
        context.state, context.user, context.path["key_id"], body
    )


async def rotate_developer_key(context: Context, body: RotateKeyRequest) -> Response:
    created = await key_controls.rotate(context.state, context.user, context.path["key_id"], body)
    return json_response(created, 201, headers={"Cache-Control": "no-store"})


async def developer_usage(context: Context, query: UsageQuery) -> UsageReport:
    return await service.usage(context.state, context.user, query)


async def developer_trials(context: Context) -> TrialList:
    return await service.trials(context.state, context.user)


_GROUP = RouteGroup("/api/v1/developers", _DEVELOPERS, "developers")
ROUTES = [
    _GROUP.route("GET", "/me", developer_profile, "The developer's profile and quota",
                 response=DeveloperProfile),
    _GROUP.route("GET", "/keys", list_developer_keys,
                 "The developer's API keys, newest first (never the key itself)",
                 query=KeyListQuery, response=ApiKeyPage),
    _GROUP.route("POST", "/keys", create_developer_key,
                 "Create an API key; its plaintext is in this response only",
                 body=CreateKeyRequest, response=CreatedApiKey, status=201),
    _GROUP.route("DELETE", "/keys/{key_id}", revoke_developer_key,
                 "Revoke an API key; the gateway refuses it from the next request on",
                 status=204),
    _GROUP.route("PATCH", "/keys/{key_id}", update_developer_key,
                 "Set a key's controls: spend cap, own rate limit, expiry, allowed agents",
                 body=KeyControlsPatch, response=ApiKeyOut),
    _GROUP.route("POST", "/keys/{key_id}/rotate", rotate_developer_key,
                 "Replace a key (same name and controls); the old one works a grace period more",
                 body=RotateKeyRequest, response=CreatedApiKey, status=201),
    _GROUP.route("GET", "/usage", developer_usage,
                 "Calls, spend and units in a range: totals, per agent, per API key and per day",
                 query=UsageQuery, response=UsageReport),
    _GROUP.route("GET", "/trials", developer_trials,
                 "Free trial calls used per agent", response=TrialList),
]  # fmt: skip
