"""The `marketplace_search` tool: published agents by what they do, free of charge.

One full-text query over the marketplace's own index (`agents.search_vector`, the GIN index
the marketplace API searches); active agents only, their public columns only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from common.tool_names import tool_name
from common.validation import check_decoded, invalid, money_text
from gateway.mcp.tools import price_text

MAX_QUERY_CHARS = 500
MAX_RESULTS = 20
_DEFAULT_RESULTS = 5
_DESCRIPTION_CHARS = 300

_SEARCH = """
    SELECT a.id, a.name, a.description, a.price_per_call, a.average_rating, a.review_count
    FROM agents a CROSS JOIN websearch_to_tsquery('english', $1) AS query
    WHERE a.status = 'active' AND a.search_vector @@ query
    ORDER BY ts_rank(a.search_vector, query) DESC, a.total_calls DESC, a.id
    LIMIT $2"""


def search_arguments(arguments: object) -> tuple[str, int]:
    """The query and the number of results, or 400 `40002` naming what is wrong."""
    if not isinstance(arguments, dict):
        raise invalid("arguments", "must be an object")
    check_decoded(arguments, "arguments")
    if unknown := sorted(set(arguments) - {"query", "limit"}):
        raise invalid(unknown[0], "is not an argument of marketplace_search (query, limit)")
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise invalid("query", "is required: a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise invalid("query", f"is at most {MAX_QUERY_CHARS} characters")
    limit = arguments.get("limit", _DEFAULT_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise invalid("limit", f"must be an integer from 1 to {MAX_RESULTS}")
    return query, limit


async def search(
    db: asyncpg.Pool, arguments: object, *, unit_price: Decimal, trial_calls: int
) -> dict[str, Any]:
    """The tool's result: one line per agent for the model, the same as structured data."""
    query, limit = search_arguments(arguments)
    rows = await db.fetch(_SEARCH, query, limit)
    agents = []
    lines = []
    for row in rows:
        agent_id = str(row["id"])
        tool = tool_name(row["name"], agent_id)
        description = (row["description"] or "").strip()[:_DESCRIPTION_CHARS]
        rating = format(row["average_rating"].normalize(), "f")
        agents.append({
            "tool": tool, "agent_id": agent_id, "name": row["name"], "description": description,
            "price_per_call": money_text(row["price_per_call"]), "rating": rating,
            "reviews": row["review_count"],
        })  # fmt: skip
        price = price_text(row["price_per_call"], unit_price, trial_calls)
        lines.append(f"- {row['name']} (tool {tool}): {description} {price} "
                     f"Rating {rating} from {row['review_count']} reviews.")  # fmt: skip
    text = "\n".join(lines) if lines else f"No published agent matches {query!r}."
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"agents": agents},
        "isError": False,
    }
