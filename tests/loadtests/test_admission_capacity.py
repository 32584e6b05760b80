"""The admission capacity harness counts what Redis really did: every admission it reports
took its unit of quota and left no reservation open (loadtests/admission_capacity.py)."""

from __future__ import annotations

import threading

from loadtests.admission_capacity import Job, books, drive, seed
from tests.processes import Servers


async def test_the_harness_counts_exactly_the_admissions_redis_settled(
    servers: Servers, database_url: str
) -> None:
    agent_id, callers = await seed(database_url, servers.redis_url, users=3)
    job = Job(servers.redis_url, database_url, agent_id, callers, concurrency=4, duration_s=0.5)
    go = threading.Event()
    go.set()
    admissions = await drive(job, threading.Semaphore(0), go)
    assert admissions > 0
    assert await books(servers.redis_url, callers) == (admissions, 0)
