"""The admission capacity harness counts what Redis really did: every admission it reports
took its unit of quota and left no reservation open (loadtests/admission_capacity.py)."""

from __future__ import annotations

import threading

import pytest

from loadtests.admission_capacity import Job, books, drive, seed
from tests.processes import Servers


@pytest.mark.parametrize("cluster", [False, True], ids=["one primary", "cluster"])
async def test_the_harness_counts_exactly_the_admissions_redis_settled(
    request: pytest.FixtureRequest, servers: Servers, database_url: str, cluster: bool
) -> None:
    """On one Valkey, and on the 3-primary cluster as a REDIS_CLUSTER gateway admits
    (--primaries 3)."""
    url = request.getfixturevalue("valkey_cluster").url if cluster else servers.redis_url
    agent_id, callers = await seed(database_url, url, users=6, cluster=cluster)
    job = Job(url, database_url, agent_id, callers, concurrency=4, duration_s=0.5, cluster=cluster)
    go = threading.Event()
    go.set()
    admissions = await drive(job, threading.Semaphore(0), go)
    assert admissions > 0
    assert await books(url, callers, cluster=cluster) == (admissions, 0)
