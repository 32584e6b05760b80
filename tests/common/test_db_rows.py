"""The fetch helpers of common/db.py and from_row of control_plane/rows.py, on real rows."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

import asyncpg
import msgspec
import pytest

from common.db import MissingRowError, fetch_all, fetch_one, fetch_optional
from control_plane.rows import from_row

_ROW = """SELECT $1::uuid AS id, $2::numeric AS price, 4.50::numeric AS rating,
                 3 AS calls, 'a'::text AS name"""


class _Out(msgspec.Struct):
    id: str
    price: str
    rating: float
    calls: int
    label: str
    note: str | None = None


@dataclasses.dataclass
class _Plain:
    id: uuid.UUID
    price: Decimal
    calls: float


async def test_fetch_optional_is_none_without_a_row(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        assert await fetch_optional(connection, "SELECT 1 WHERE false") is None
        row = await fetch_optional(connection, "SELECT $1::int AS n", 7)
    assert row is not None
    assert row["n"] == 7


async def test_fetch_one_refuses_a_missing_row(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        assert (await fetch_one(connection, "SELECT 2 AS n"))["n"] == 2
        with pytest.raises(MissingRowError, match=r"^SELECT$"):
            await fetch_one(connection, "SELECT 1 WHERE false")


async def test_fetch_all_keeps_the_order(db_pool: asyncpg.Pool) -> None:
    rows = await fetch_all(db_pool, "SELECT n FROM generate_series(3, 1, -1) AS n")
    assert [row["n"] for row in rows] == [3, 2, 1]


async def test_from_row_converts_to_the_declared_types(db_pool: asyncpg.Pool) -> None:
    agent_id = uuid.uuid4()
    async with db_pool.acquire() as connection:
        row = await fetch_one(connection, _ROW, agent_id, Decimal("0.0100"))
    out = from_row(_Out, row, label="given")
    assert out == _Out(str(agent_id), "0.01", 4.5, 3, "given", None)
    assert from_row(_Out, row, label="x", price="overridden").price == "overridden"
    plain = from_row(_Plain, row)
    assert plain == _Plain(agent_id, Decimal("0.0100"), 3.0)
    assert isinstance(plain.calls, float)


async def test_from_row_names_a_missing_column(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        row = await fetch_one(connection, _ROW, uuid.uuid4(), Decimal(1))
    with pytest.raises(KeyError, match=r"_Out\.label"):
        from_row(_Out, row)
