"""Hybrid retrieval on real Postgres (pgvector HNSW + tsvector GIN) with real local-model
embeddings of the shipped corpus: seed property 18, fusion, isolation between agents and
between embedding models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.knowledge.embedding import pgvector_literal
from common.knowledge.minilm import MiniLM
from common.knowledge.retrieval import Mode, Question, fused_score, retrieve
from common.knowledge.vectors import use_binary_vectors
from loadtests.knowledge_corpus import KINDS, documents, questions
from tests.factories import make_agent

MODEL = "local/all-MiniLM-L6-v2"


@dataclass
class Corpus:
    agent_id: str
    other_agent_id: str
    file_ids: dict[str, str]  # doc id -> file id
    doc_vectors: dict[str, np.ndarray]
    asked: list[tuple[str, str, str, np.ndarray]]  # (text, answer doc id, sort, vector)


async def add_document(
    db: asyncpg.Pool, *, agent_id: str, doc_id: str, text: str, vector: np.ndarray, model: str
) -> str:
    file_id = str(uuid.uuid4())
    await db.execute(
        """INSERT INTO knowledge_files (id, agent_id, filename, file_type, file_size, storage_key,
                                        content_sha256, status, chunk_count, processed_at)
           VALUES ($1, $2, $3, 'txt', $4, $5, $6, 'ready', 1, now())""",
        file_id, agent_id, f"{doc_id}.txt", len(text), f"test/{file_id}",
        uuid.uuid4().hex + uuid.uuid4().hex,
    )  # fmt: skip
    await db.execute(
        """INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding,
                                         embedding_model, embedding_dimension)
           VALUES ($1, $2, 0, $3, $4::vector, $5, 384)""",
        agent_id, file_id, text, pgvector_literal(vector), model,
    )  # fmt: skip
    return file_id


@pytest_asyncio.fixture(scope="module")
async def corpus(db_pool: asyncpg.Pool) -> AsyncIterator[Corpus]:
    kinds = {kind for kind, _, _ in KINDS[:8]}
    docs = [doc for doc in documents() if doc.kind in kinds]
    asked = [q for q in questions() if q.answer in {d.doc_id for d in docs}]
    model = MiniLM.load()
    doc_vectors = model.embed([d.text for d in docs])
    question_vectors = model.embed([q.text for q in asked])
    agent = await make_agent(db_pool)
    other = await make_agent(db_pool)
    file_ids = {}
    for doc, vector in zip(docs, doc_vectors, strict=True):
        file_ids[doc.doc_id] = await add_document(
            db_pool,
            agent_id=agent.agent_id,
            doc_id=doc.doc_id,
            text=doc.text,
            vector=vector,
            model=MODEL,
        )
        # The other agent has the same texts: none of them may ever leak across.
        await add_document(db_pool, agent_id=other.agent_id, doc_id=doc.doc_id, text=doc.text,
                           vector=vector, model=MODEL)  # fmt: skip
    # A chunk of another model that would match everything if vectors were compared blindly.
    await add_document(db_pool, agent_id=agent.agent_id, doc_id="alien",
                       text="warranty months model code", vector=question_vectors.mean(axis=0),
                       model="openai/another-model")  # fmt: skip
    yield Corpus(
        agent.agent_id, other.agent_id, file_ids,
        dict(zip([d.doc_id for d in docs], doc_vectors, strict=True)),
        [(q.text, q.answer, q.sort, v) for q, v in zip(asked, question_vectors, strict=True)],
    )  # fmt: skip


async def search(db: asyncpg.Pool, question: Question, mode: Mode = Mode.HYBRID) -> list:  # type: ignore[type-arg]
    async with db.acquire() as connection:
        await use_binary_vectors(connection)
        return await retrieve(connection, question, mode)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_property_18_rag_retrieval_relevance(
    corpus: Corpus, db_pool: asyncpg.Pool, data: st.DataObject
) -> None:
    """Seed property 18: every retrieved chunk's cosine similarity with the query embedding
    is above the threshold (and is the true cosine), at most top_k of them, only the agent's."""
    text, _, _, vector = data.draw(st.sampled_from(corpus.asked))
    top_k = data.draw(st.integers(1, 8))
    threshold = data.draw(st.floats(0.0, 0.6))
    question = Question(corpus.agent_id, text, vector, MODEL, top_k=top_k, threshold=threshold)

    passages = await search(db_pool, question)

    assert len(passages) <= top_k
    for passage in passages:
        assert passage.similarity is not None
        assert passage.similarity >= threshold
        stored = corpus.doc_vectors[passage.filename.removesuffix(".txt")]
        assert abs(passage.similarity - float(stored @ vector)) < 1e-4
        assert passage.file_id in corpus.file_ids.values()  # never the other agent's copy
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)


async def test_hybrid_finds_what_each_half_finds(corpus: Corpus, db_pool: asyncpg.Pool) -> None:
    recall: dict[Mode, list[bool]] = {mode: [] for mode in Mode}
    for text, answer, _, vector in corpus.asked:
        for mode in Mode:
            question = Question(corpus.agent_id, text, vector, MODEL, threshold=None)
            found = await search(db_pool, question, mode)
            recall[mode].append(f"{answer}.txt" in [p.filename for p in found])
    hybrid, vector_only, text_only = (
        np.mean(recall[m]) for m in (Mode.HYBRID, Mode.VECTOR, Mode.TEXT)
    )
    assert hybrid >= max(vector_only, text_only) - 0.05, recall
    assert hybrid >= 0.8


async def test_an_exact_model_code_is_found_by_full_text(
    corpus: Corpus, db_pool: asyncpg.Pool
) -> None:
    coded = [item for item in corpus.asked if item[2] == "code"]
    assert coded
    for text, answer, _, vector in coded:
        found = await search(
            db_pool, Question(corpus.agent_id, text, vector, MODEL, threshold=None)
        )
        by_name = {p.filename: p for p in found}
        assert f"{answer}.txt" in by_name, text
        assert by_name[f"{answer}.txt"].text_rank == 1


async def test_file_filter_and_another_models_vectors(
    corpus: Corpus, db_pool: asyncpg.Pool
) -> None:
    text, answer, _, vector = corpus.asked[0]
    only = (corpus.file_ids[answer],)
    found = await search(
        db_pool, Question(corpus.agent_id, text, vector, MODEL, file_ids=only, threshold=None)
    )
    assert [p.file_id for p in found] == list(only)
    everything = await search(
        db_pool, Question(corpus.agent_id, "warranty months model code", vector, MODEL, top_k=50,
                          candidates=50, threshold=None)
    )  # fmt: skip
    alien = [p for p in everything if p.filename == "alien.txt"]
    assert alien, "full text still finds the chunk of the other model"
    assert alien[0].similarity is None
    assert alien[0].vector_rank is None
    # ...but it is never injected: its similarity to the question is unknown.
    with_threshold = await search(
        db_pool, Question(corpus.agent_id, "warranty months model code", vector, MODEL, top_k=50,
                          candidates=50, threshold=0.0)
    )  # fmt: skip
    assert "alien.txt" not in [p.filename for p in with_threshold]


async def test_an_agent_without_chunks_gets_nothing(db_pool: asyncpg.Pool) -> None:
    agent = await make_agent(db_pool)
    found = await search(
        db_pool, Question(agent.agent_id, "anything", np.ones(384) / 384**0.5, MODEL)
    )
    assert found == []


def test_reciprocal_rank_fusion() -> None:
    assert fused_score(1, 1) == 2 / 61
    assert fused_score(1, None) == fused_score(None, 1) == 1 / 61
    assert fused_score(3, 1, Mode.VECTOR) == 1 / 63
    assert fused_score(3, 1, Mode.TEXT) == 1 / 61
    assert fused_score(None, 2, Mode.VECTOR) == 0
