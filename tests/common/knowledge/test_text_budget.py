"""The full-text half's cost bound (migrations/0018, common/knowledge/retrieval.py): the
per-agent lexeme counts follow every insert and delete of chunks, chunk texts cannot be
edited behind them, and a question keeps its rarest lexemes within the budget, so a code is
still found at rank 1 while words that every chunk has are left out."""

from __future__ import annotations

import uuid

import asyncpg
import numpy as np
import pytest

from common.knowledge.retrieval import Mode, Question, retrieve
from common.knowledge.vectors import use_binary_vectors
from tests.common.knowledge.test_retrieval import MODEL, add_document
from tests.factories import make_agent

FILLER = "The warranty covers parts and labour for every model in the catalogue."


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def counts(db: asyncpg.Pool, agent_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT lexeme, chunks FROM knowledge_lexemes WHERE agent_id = $1", agent_id
    )
    return {row["lexeme"]: row["chunks"] for row in rows}


async def recounted(db: asyncpg.Pool, agent_id: str) -> dict[str, int]:
    rows = await db.fetch(
        """SELECT lexeme, count(*) AS chunks
           FROM knowledge_chunks, unnest(tsvector_to_array(content_tsv)) AS lexeme
           WHERE agent_id = $1 GROUP BY lexeme""",
        agent_id,
    )
    return {row["lexeme"]: row["chunks"] for row in rows}


async def test_lexeme_counts_follow_inserts_and_deletes(db_pool: asyncpg.Pool) -> None:
    agent = await make_agent(db_pool)
    other = await make_agent(db_pool)
    files = [
        await add_document(db_pool, agent_id=agent.agent_id, doc_id=f"d{n}", text=text,
                           vector=unit(n), model=MODEL)
        for n, text in enumerate([FILLER, "Kettle KX-100 boils in two minutes.", FILLER])
    ]  # fmt: skip
    await add_document(db_pool, agent_id=other.agent_id, doc_id="o", text=FILLER,
                       vector=unit(9), model=MODEL)  # fmt: skip
    assert await counts(db_pool, agent.agent_id) == await recounted(db_pool, agent.agent_id)
    assert (await counts(db_pool, agent.agent_id))["warranti"] == 2
    assert (await counts(db_pool, other.agent_id))["warranti"] == 1

    await db_pool.execute("DELETE FROM knowledge_files WHERE id = $1", files[0])  # cascades
    assert (await counts(db_pool, agent.agent_id))["warranti"] == 1
    await db_pool.execute("DELETE FROM knowledge_files WHERE id = $1", files[2])
    left = await counts(db_pool, agent.agent_id)
    assert left == await recounted(db_pool, agent.agent_id)
    assert "warranti" not in left  # no zero rows are kept
    assert left["kettl"] == left["kx"] == 1
    assert (await counts(db_pool, other.agent_id))["warranti"] == 1  # untouched

    await db_pool.execute("DELETE FROM agents WHERE id = $1", agent.agent_id)
    assert await counts(db_pool, agent.agent_id) == {}


async def test_a_chunk_text_cannot_be_edited(db_pool: asyncpg.Pool) -> None:
    agent = await make_agent(db_pool)
    await add_document(db_pool, agent_id=agent.agent_id, doc_id="d", text=FILLER,
                       vector=unit(1), model=MODEL)  # fmt: skip
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute(
            "UPDATE knowledge_chunks SET content = 'other words' WHERE agent_id = $1",
            agent.agent_id,
        )
    # What re-embedding does stays allowed.
    await db_pool.execute(
        "UPDATE knowledge_chunks SET embedding_model = 'local/another' WHERE agent_id = $1",
        agent.agent_id,
    )


async def test_a_code_is_found_while_common_words_are_left_out(db_pool: asyncpg.Pool) -> None:
    agent = await make_agent(db_pool)
    for n in range(30):
        await add_document(db_pool, agent_id=agent.agent_id, doc_id=f"filler{n}",
                           text=f"{FILLER} Sheet {uuid.uuid4().hex}.", vector=unit(n),
                           model=MODEL)  # fmt: skip
    await add_document(db_pool, agent_id=agent.agent_id, doc_id="kettle",
                       text=f"{FILLER} The kettle QZ-7781 boils in two minutes.",
                       vector=unit(99), model=MODEL)  # fmt: skip
    text = "What warranty covers the model QZ-7781 in the catalogue?"

    async def text_hits(budget: int) -> list[str]:
        question = Question(agent.agent_id, text, unit(5), MODEL, top_k=40, candidates=40,
                            threshold=None, text_budget=budget)  # fmt: skip
        async with db_pool.acquire() as connection:
            await use_binary_vectors(connection)
            found = await retrieve(connection, question, Mode.TEXT)
        return [p.filename for p in found if p.text_rank is not None]

    # A budget the whole question fits in: every chunk shares its common words.
    assert len(await text_hits(10_000)) == 31
    # A tight one: only the rare lexemes (qz, -7781) are searched: only the kettle has them.
    assert await text_hits(2) == ["kettle.txt"]
    # Nothing rare enough: the full-text half finds nothing; the vector half still answers.
    assert await text_hits(0) == []
    question = Question(agent.agent_id, text, unit(99), MODEL, threshold=None, text_budget=0)
    async with db_pool.acquire() as connection:
        await use_binary_vectors(connection)
        assert (await retrieve(connection, question))[0].filename == "kettle.txt"
