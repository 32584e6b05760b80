"""Retrieval benchmark: recall@5 on the shipped corpus, and the cost of one retrieval.

    OPENBLAS_NUM_THREADS=1 python -m loadtests.retrieval_benchmark [--chunks 1000,100000]
                                                                   [--samples 300]
                                                                   [--text-budget N]
                                                                   [--spread N]
                                                                   [--agent-gin ROUNDS]

Starts a throwaway Postgres (pgvector), applies the migrations, and then:

1. Cost: for each size in --chunks, an agent with that many chunks (random unit vectors and
   random words) is searched with the corpus questions' vectors: p50/p99 of the one SQL
   round trip and the Postgres backend's CPU per retrieval (from /proc: it hardly moves
   with the box's load, wall time does), with the filler alone in the HNSW index.
2. Recall: the 240 product sheets of loadtests/knowledge_corpus.py are embedded with the
   local model (all-MiniLM-L6-v2) and stored as one agent's chunks; each of the 100
   questions is asked three ways (vector only, full text only, hybrid = both fused with
   reciprocal-rank fusion), and recall@5 (is the answering sheet among the first five?) is
   printed per kind of question. Hybrid is also shown with the default similarity threshold
   (property 18), as the gateway runs it.
3. Cost again, now that the index also holds the corpus: its real vectors are nearer to the
   questions than any random filler vector, so the filler agents' filtered HNSW scans step
   over the corpus's 240 chunks first (as an index shared by many agents makes them do).
   And the local model's time to embed a 30-word question, p50/p99 wall and CPU, on one
   thread.

`--spread N` stores each size as N agents' chunks (one of them measured: a knowledge base
among many in one table). `--agent-gin ROUNDS` only compares the full-text index of 0008 (on
content_tsv) with a per-agent btree_gin one on (agent_id, content_tsv), in alternating rounds
on the same data: the full-text half alone and the whole retrieval, backend CPU per query.
Measured 2026-12-04 (load 6-13, 3 rounds of 300): 100,000 chunks over 100 agents, the per-agent
index took the text half 0.57-0.73 -> 0.33-0.50 ms, the whole retrieval 2.93-3.13 -> 2.80-3.13
ms; one agent of 100,000 chunks, 1.23-1.40 -> 1.43-1.53 ms and 4.97-5.17 -> 5.20-5.23 ms. Not
adopted: within ~3% of a retrieval either way, for a new extension.

The gateway end to end (added latency per knowledge call, plain calls beside them) is
`python -m loadtests.knowledge_load`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np
from numpy.typing import NDArray

from common.db import create_pool
from common.knowledge.embedding import pgvector_literal
from common.knowledge.minilm import MiniLM
from common.knowledge.retrieval import (
    _HYBRID_SQL,
    DEFAULT_TEXT_BUDGET,
    SERVER_SETTINGS,
    Mode,
    Question,
    retrieve,
)
from common.migrations import migrate_url
from devstack import servers
from devstack.servers import free_port
from loadtests.knowledge_corpus import documents, questions
from tests.factories import make_agent

MODEL = "local/all-MiniLM-L6-v2"
THIRTY_WORDS = (
    "Hello, I bought the refurbished laptop from your European store last spring and now the"
    " battery drains within an hour: is that covered by the warranty, and how do I claim it?"
)


async def add_file(db: asyncpg.Pool, agent_id: str, name: str) -> str:
    file_id = str(uuid.uuid4())
    await db.execute(
        """INSERT INTO knowledge_files (id, agent_id, filename, file_type, file_size, storage_key,
                                        content_sha256, status, chunk_count, processed_at)
           VALUES ($1, $2, $3, 'txt', 1, $4, $5, 'ready', 1, now())""",
        file_id, agent_id, name, f"bench/{file_id}", uuid.uuid4().hex * 2,
    )  # fmt: skip
    return file_id


def backend_cpu_ms(pid: int) -> float:
    """CPU time (user + system) a local Postgres backend has used: unlike wall time, it
    hardly moves with the box's load, so runs at different loads compare."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def recall(db: asyncpg.Pool, model: MiniLM, text_budget: int) -> None:
    docs, asked = documents(), questions()
    started = time.perf_counter()
    doc_vectors = model.embed([d.text for d in docs])
    question_vectors = model.embed([q.text for q in asked])
    print(f"embedded {len(docs)} documents and {len(asked)} questions in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    agent = await make_agent(db)
    file_of = {}
    for doc, vector in zip(docs, doc_vectors, strict=True):
        file_id = await add_file(db, agent.agent_id, doc.filename)
        file_of[file_id] = doc.doc_id
        await db.execute(
            """INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding,
                                             embedding_model, embedding_dimension)
               VALUES ($1, $2, 0, $3, $4::vector, $5, 384)""",
            agent.agent_id, file_id, doc.text, pgvector_literal(vector), MODEL,
        )  # fmt: skip
    runs = [
        ("vector only", Mode.VECTOR, None),
        ("full text only", Mode.TEXT, None),
        ("hybrid (RRF)", Mode.HYBRID, None),
        ("hybrid + threshold 0.25", Mode.HYBRID, 0.25),
    ]
    sorts = ["code", "paraphrase", "named"]
    print(f"\nrecall@5, {len(asked)} questions over {len(docs)} documents")
    print(f"{'retriever':<26}" + "".join(f"{s + f' ({sum(q.sort == s for q in asked)})':>17}"
                                          for s in sorts) + f"{'all':>8}")  # fmt: skip
    async with db.acquire() as connection:
        for label, mode, threshold in runs:
            hits: dict[str, list[bool]] = {s: [] for s in sorts}
            for q, vector in zip(asked, question_vectors, strict=True):
                question = Question(agent.agent_id, q.text, vector, MODEL, top_k=5,
                                    threshold=threshold, text_budget=text_budget)  # fmt: skip
                found = await retrieve(connection, question, mode)
                hits[q.sort].append(q.answer in {file_of[p.file_id] for p in found})
            every = [hit for values in hits.values() for hit in values]
            print(f"{label:<26}" + "".join(f"{np.mean(hits[s]):>17.2f}" for s in sorts)
                  + f"{np.mean(every):>8.2f}")  # fmt: skip


# Building 100,000 chunks' HNSW index takes minutes on a busy box: past any pool's default.
_FILL_TIMEOUT_S = 3600


async def fill(db: asyncpg.Pool, agent_ids: list[str], chunks: int) -> None:
    """`chunks` chunks for each agent, of random unit vectors and 60 words each, in SQL. The
    words follow a power law over a 30,000-word vocabulary (the corpus's words at random
    ranks among made-up ones), as words do in real text: a question's rarer words match few
    chunks and its common ones many, which is what the full-text half's cost depends on.
    Every agent draws from the same vocabulary (one language), so a question's lexemes
    match chunks of every agent."""
    corpus = sorted({w.strip(".,:?").lower() for d in documents() for w in d.text.split()})
    rng = random.Random(7)
    vocabulary = corpus + [f"w{rng.randrange(36**5):x}" for _ in range(30_000 - len(corpus))]
    rng.shuffle(vocabulary)
    async with db.acquire() as connection:
        await connection.execute("SET maintenance_work_mem = '512MB'")
        # Rebuilt after the insert (far quicker than inserting into it), as the migrations
        # define it (0020: over halfvec copies).
        index = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'knowledge_chunks_embedding_idx'"
        )
        await connection.execute("DROP INDEX IF EXISTS knowledge_chunks_embedding_idx")
        for agent_id in agent_ids:
            await _fill_one(connection, agent_id, chunks, vocabulary)
        await connection.execute(index, timeout=_FILL_TIMEOUT_S)
        await connection.execute("VACUUM ANALYZE knowledge_chunks", timeout=_FILL_TIMEOUT_S)


async def _fill_one(
    connection: asyncpg.Connection, agent_id: str, chunks: int, vocabulary: list[str]
) -> None:
    file_id = await connection.fetchval(
        """INSERT INTO knowledge_files (agent_id, filename, file_type, file_size, storage_key,
                                        content_sha256, status, chunk_count, processed_at)
           VALUES ($1, $2, 'txt', 1, $3, $4, 'ready', $5, now()) RETURNING id""",
        agent_id, f"filler-{chunks}.txt", f"bench/{uuid.uuid4()}", uuid.uuid4().hex * 2, chunks,
    )  # fmt: skip
    for start in range(0, chunks, 20_000):
        await connection.execute(
            """INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content,
                                             embedding, embedding_model, embedding_dimension)
               SELECT $1, $2, g,
                      array_to_string(ARRAY(SELECT ($3::text[])[1 + floor(random() ^ 4
                          * cardinality($3::text[]))::int] FROM generate_series(1, 60)
                          WHERE g >= 0), ' '),
                      (SELECT array_agg(random() - 0.5) FROM generate_series(1, 384)
                       WHERE g >= 0)::vector,
                      $4, 384
               FROM generate_series($5::int, $6::int) AS g""",
            agent_id, file_id, vocabulary, MODEL, start, min(chunks, start + 20_000) - 1,
            timeout=_FILL_TIMEOUT_S,
        )  # fmt: skip


_NEAREST = """SELECT id FROM knowledge_chunks WHERE agent_id = $1 AND embedding_model = $3
               ORDER BY embedding::halfvec(384) <=> $2::vector::halfvec(384) LIMIT 20"""


async def vector_recall(
    connection: asyncpg.Connection, agent_id: str, vectors: NDArray[np.float32]
) -> float:
    """recall@20 of the index's nearest chunks against the exact nearest (no index)."""
    found = []
    for vector in vectors[:20]:
        args = (agent_id, pgvector_literal(vector), MODEL)
        approximate = {row["id"] for row in await connection.fetch(_NEAREST, *args)}
        async with connection.transaction():
            await connection.execute("SET LOCAL enable_indexscan = off")
            exact = {row["id"] for row in await connection.fetch(_NEAREST, *args)}
        found.append(len(approximate & exact) / len(exact))
    return float(np.mean(found))


async def fill_agents(db: asyncpg.Pool, sizes: list[int], spread: int = 1) -> dict[int, str]:
    """For each size, `spread` agents of size / spread chunks each; the first is the one
    measured. The HNSW index is built once per size, over all of them."""
    agents = {}
    for size in sizes:
        ids = [(await make_agent(db)).agent_id for _ in range(spread)]
        started = time.perf_counter()
        await fill(db, ids, size // spread)
        print(f"  (filled {size} chunks over {spread} agent(s) and built the HNSW index in "
              f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
        agents[size] = ids[0]
    return agents


async def cost(db: asyncpg.Pool, model: MiniLM, agents: dict[int, str], samples: int,
               text_budget: int, *, index: str) -> None:  # fmt: skip
    asked = questions()
    vectors = model.embed([q.text for q in asked])
    print(
        "\nretrieval: one SQL round trip (vector top-20 + full-text top-20, fused, top 5), 1"
        f" client; text budget {text_budget}; vector recall@20 of the index against an exact"
        f" scan; the HNSW index holds {index}"
    )
    print(f"{'chunks':>10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'vector recall@20':>17}"
          f" {'backend CPU ms':>15}")  # fmt: skip
    for size, agent_id in agents.items():
        timings = []
        async with db.acquire() as connection:
            backend = await connection.fetchval("SELECT pg_backend_pid()")
            for n in range(samples + 20):
                if n == 20:
                    cpu_before = backend_cpu_ms(backend)
                q = asked[n % len(asked)]
                question = Question(agent_id, q.text, vectors[n % len(asked)], MODEL,
                                    text_budget=text_budget)  # fmt: skip
                began = time.perf_counter()
                await retrieve(connection, question)
                if n >= 20:  # warm-up: plans and caches
                    timings.append((time.perf_counter() - began) * 1000)
            cpu = (backend_cpu_ms(backend) - cpu_before) / samples
            exactness = await vector_recall(connection, agent_id, vectors)
        print(f"{size:>10} {percentile(timings, 0.5):>8.2f} {percentile(timings, 0.99):>8.2f}"
              f" {statistics.mean(timings):>8.2f} {exactness:>17.2f} {cpu:>15.2f}")  # fmt: skip


def _text_leg_sql() -> str:
    """The full-text half of the retrieval statement alone (its lexeme choice and ranked
    top candidates), parameters renumbered: $1 agent, $2 file ids, $3 candidates, $4 text,
    $5 text budget."""
    head, rest = _HYBRID_SQL.split("vector_hits AS (", 1)
    text_hits = "text_hits AS (" + rest.split("text_hits AS (", 1)[1].split("fused AS (", 1)[0]
    sql = head + text_hits.rstrip().rstrip(",") + "\nSELECT count(*) FROM text_hits"
    for old, new in (("$4", "$2"), ("$5", "$3"), ("$6", "$4"), ("$7", "$5")):
        sql = sql.replace(old, new)
    return sql


# The per-agent full-text index measured against the one migration 0008 made.
_AGENT_GIN = "knowledge_chunks_agent_tsv_idx"
_GLOBAL_GIN = "knowledge_chunks_content_tsv_idx"


async def _use_only(connection: asyncpg.Connection, index: str) -> None:
    """Let the planner see only one of the two full-text indexes (this throwaway server's
    catalogue is edited directly: far quicker than rebuilding one for every round)."""
    await connection.execute(
        "UPDATE pg_index SET indisvalid = (indexrelid = $1::regclass)"
        " WHERE indexrelid IN ($2::regclass, $3::regclass)",
        index, _AGENT_GIN, _GLOBAL_GIN,
    )  # fmt: skip


async def agent_gin(db: asyncpg.Pool, model: MiniLM, agents: dict[int, str], samples: int,
                    text_budget: int, *, rounds: int) -> None:  # fmt: skip
    """The full-text half (alone, and the whole retrieval) with the global GIN index on
    content_tsv (0008) against a btree_gin one on (agent_id, content_tsv), in alternating
    rounds on the same data and connection: the Postgres backend's CPU per query."""
    asked = questions()
    vectors = model.embed([q.text for q in asked])
    text_sql = _text_leg_sql()
    async with db.acquire() as connection:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        started = time.perf_counter()
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS {_AGENT_GIN} ON knowledge_chunks"
            " USING gin (agent_id, content_tsv)",
            timeout=_FILL_TIMEOUT_S,
        )
        size = await connection.fetchval("SELECT pg_relation_size($1::regclass)", _AGENT_GIN)
        old_size = await connection.fetchval("SELECT pg_relation_size($1::regclass)", _GLOBAL_GIN)
        print(f"\nper-agent GIN built in {time.perf_counter() - started:.0f} s: {size >> 20} MiB"
              f" (the global one: {old_size >> 20} MiB)")  # fmt: skip
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        print(
            f"{'chunks':>10} {'round':>5} {'index':>9} {'text p50 ms':>12} {'text CPU ms':>12}"
            f" {'all p50 ms':>11} {'all CPU ms':>11}   (* the plan uses neither index)"
        )
        for size_, agent_id in agents.items():
            for round_ in range(rounds):
                for label, index in (("global", _GLOBAL_GIN), ("per-agent", _AGENT_GIN)):
                    await _use_only(connection, index)
                    plan = await connection.fetchval(
                        "EXPLAIN (FORMAT JSON) " + text_sql, agent_id, [], 20, asked[0].text,
                        text_budget,
                    )  # fmt: skip
                    used = label if index in plan else label + "*"
                    measured = []
                    for leg in ("text", "all"):
                        walls, cpu = [], 0.0
                        for n in range(samples + 10):
                            q = asked[n % len(asked)]
                            if n == 10:
                                cpu = backend_cpu_ms(backend)
                            began = time.perf_counter()
                            if leg == "text":
                                await connection.fetchval(text_sql, agent_id, [], 20, q.text,
                                                          text_budget)  # fmt: skip
                            else:
                                await retrieve(connection, Question(
                                    agent_id, q.text, vectors[n % len(asked)], MODEL,
                                    text_budget=text_budget))  # fmt: skip
                            if n >= 10:
                                walls.append((time.perf_counter() - began) * 1000)
                        measured += [percentile(walls, 0.5),
                                     (backend_cpu_ms(backend) - cpu) / samples]  # fmt: skip
                    print(
                        f"{size_:>10} {round_:>5} {used:>9} {measured[0]:>12.2f}"
                        f" {measured[1]:>12.2f} {measured[2]:>11.2f} {measured[3]:>11.2f}"
                    )
        await _use_only(connection, _GLOBAL_GIN)


async def embedding_cost(model: MiniLM, samples: int) -> None:
    print(f"\nembedding a {len(THIRTY_WORDS.split())}-word question (local model, one thread)")
    model.embed([THIRTY_WORDS])
    walls, cpus = [], []
    for _ in range(samples):
        wall, cpu = time.perf_counter(), time.process_time()
        model.embed([THIRTY_WORDS])
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    print(f"wall p50 {percentile(walls, 0.5):.2f} ms, p99 {percentile(walls, 0.99):.2f} ms;"
          f" CPU p50 {percentile(cpus, 0.5):.2f} ms")  # fmt: skip


async def main(sizes: list[int], samples: int, text_budget: int, *, spread: int = 1,
               agent_gin_rounds: int = 0) -> None:  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="agentlink-retrieval-"))
    root.chmod(0o755)  # noqa: ASYNC240 - set-up, before anything runs
    postgres = servers.PostgresServer(root / "postgres", free_port(), durable=False)
    try:
        postgres.start()
        await migrate_url(postgres.url)
        db = await create_pool(
            postgres.url, min_size=1, max_size=4, server_settings=SERVER_SETTINGS,
            binary_vectors=True,  # as the gateway's pool sends the question's vector
        )  # fmt: skip
        model = MiniLM.load()
        agents = await fill_agents(db, sizes, spread)
        if agent_gin_rounds:
            await agent_gin(db, model, agents, samples, text_budget, rounds=agent_gin_rounds)
            await db.close()
            return
        # The filler's random vectors are all about as far from a question as from each
        # other; the shipped corpus's real ones are nearer to the corpus questions than any
        # of them. So, in the index, the recall corpus (another agent) stands before every
        # filler chunk: measured before it exists, and again beside it (the filtered HNSW
        # scan then steps over its 240 chunks first: what many agents' chunks sharing one
        # index cost a knowledge base whose questions match theirs).
        await cost(db, model, agents, samples, text_budget, index="the filler chunks only")
        await recall(db, model, text_budget)
        beside = ("the filler and the recall corpus: 240 chunks of another agent nearer to"
                  " every question than any filler chunk")  # fmt: skip
        await cost(db, model, agents, samples, text_budget, index=beside)
        await embedding_cost(model, samples)
        await db.close()
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="1000,100000")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--text-budget", type=int, default=DEFAULT_TEXT_BUDGET)
    parser.add_argument(
        "--spread",
        type=int,
        default=1,
        help="store each size as this many agents' chunks (one is measured)",
    )
    parser.add_argument("--agent-gin", type=int, default=0, metavar="ROUNDS",
                        help="only compare the global full-text GIN index with a per-agent"
                             " (btree_gin) one, in this many alternating rounds")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(size) for size in args.chunks.split(",")]
    asyncio.run(main(sizes, args.samples, args.text_budget, spread=args.spread,
                     agent_gin_rounds=args.agent_gin))  # fmt: skip
