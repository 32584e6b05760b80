"""Helpers for the dashboard's tests: agents made through the pages, admins made in the
database (admins cannot sign up), and reading values back off a page."""

from __future__ import annotations

import re

import asyncpg

from common.domain import AdminRole
from control_plane.auth import repository as auth
from tests import factories
from tests.control_plane.dashboard.conftest import PASSWORD, Browserless
from tests.processes import cheap_passwords

_CHEAP = cheap_passwords()


async def user_id_of(db: asyncpg.Pool, email: str) -> str:
    """The id of the account that signed up with `email`, found as the login finds it."""
    async with db.acquire() as connection:
        user = await auth.user_by_email(connection, email.lower())
    assert user is not None, email
    return str(user["id"])


def agent_form(name: str, prompt: str, price: str = "0.01", **extra: str) -> dict[str, str]:
    return {
        "name": name, "description": f"{name}: a test agent.", "category": "testing",
        "price_per_call": price, "system_prompt": prompt, "provider": "openai",
        "model": "mock-model", "temperature": "", "max_tokens": "", "top_p": "",
        "fallbacks": "", "leak_guard": "1", "chunk_size": "1000", "chunk_overlap": "200",
        "top_k": "5", **extra,
    }  # fmt: skip


async def create_agent(
    creator: Browserless, *, name: str, prompt: str, price: str = "0.01", publish: bool = False
) -> str:
    await creator.get("/creator/agents/new")
    response = await creator.post("/creator/agents/new", agent_form(name, prompt, price))
    assert response.status_code == 303, response.text
    agent_id = response.headers["location"].rsplit("/", 1)[1]
    await creator.get(response.headers["location"])
    if publish:
        published = await creator.post(f"/creator/agents/{agent_id}/publish")
        assert published.status_code == 303, published.text
    return agent_id


async def make_admin(db: asyncpg.Pool, role: AdminRole) -> str:
    """An admin who can log in with PASSWORD; returns their email."""
    return (await factories.make_admin(db, role, password_hash=_CHEAP.hash(PASSWORD))).email


def find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not on the page"
    return found.group(1)
