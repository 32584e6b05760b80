"""The chain jobs' gauges on the control plane's /metrics, over real HTTP against a control
plane with the chain on: jobs counted by kind and status, the lag of the oldest open job
(jobs waiting for their creator's wallet left out), sampled at most once per interval, and the
last values kept while Postgres does not answer."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from control_plane.chain.client import ChainClient
from control_plane.chain.job_metrics import ChainJobGauges
from control_plane.chain.outbox import ChainOutbox
from control_plane.chain.settings import ChainSettings
from control_plane.metrics import ControlPlaneMetrics
from devstack.servers import free_port
from tests.control_plane.chain.test_outbox import job_of, new_wallet, published_agent

JOBS = "agentlink_control_chain_jobs"
LAG = "agentlink_control_chain_job_lag_seconds"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:  # fmt: skip
    return found.get((name, frozenset(labels.items())))


async def test_metrics_count_chain_jobs_by_kind_and_status_with_their_lag(
    chain_api: str,
    chain_db: asyncpg.Pool,
    chain_client: ChainClient,
    chain_settings: ChainSettings,
) -> None:
    minted = await published_agent(chain_db, new_wallet())
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
    assert (await job_of(chain_db, minted))["status"] == "confirmed"
    waiting = await published_agent(chain_db, None)  # no wallet: waits for its creator
    stuck = await published_agent(chain_db, new_wallet())
    failed = await published_agent(chain_db, new_wallet())
    await chain_db.execute(
        "UPDATE chain_jobs SET created_at = now() - interval '2 hours' WHERE subject_id = $1",
        waiting,
    )
    await chain_db.execute(
        "UPDATE chain_jobs SET created_at = now() - interval '40 minutes' WHERE subject_id = $1",
        stuck,
    )
    await chain_db.execute(
        "UPDATE chain_jobs SET status = 'failed', last_error = 'reverted' WHERE subject_id = $1",
        failed,
    )
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()  # stuck is leased out
    await chain_db.execute(
        "UPDATE chain_jobs SET last_error = 'waiting for the creator''s wallet address'"
        " WHERE subject_id = $1",
        waiting,
    )
    async with httpx.AsyncClient(base_url=chain_api, timeout=30) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    stuck_status = (await job_of(chain_db, stuck))["status"]
    counts = {
        status: value(found, JOBS, kind="mint_agent", status=status)
        for status in ("pending", "sent", "confirmed", "failed")
    }
    expected = {"pending": 1.0, "sent": 0.0, "confirmed": 1.0, "failed": 1.0}
    expected[stuck_status] += 1
    assert counts == expected
    assert value(found, JOBS, kind="pay_withdrawal", status="pending") == 0
    lag = value(found, LAG, kind="mint_agent")
    assert lag is not None
    # The stuck job's 40 minutes (or it was confirmed: then 0), never the waiting job's 2 hours.
    if stuck_status == "confirmed":
        assert lag == 0
    else:
        assert 40 * 60 <= lag < 2 * 3600
    assert value(found, LAG, kind="record_settlement") == 0


async def test_the_gauges_sample_once_per_interval_and_keep_values_when_postgres_fails(
    chain_db: asyncpg.Pool,
) -> None:
    metrics = ControlPlaneMetrics()
    gauges = ChainJobGauges(metrics, min_interval_s=3600)
    await published_agent(chain_db, None)

    def pending() -> float | None:
        return metrics.registry.get_sample_value(JOBS, {"kind": "mint_agent", "status": "pending"})

    await gauges.refresh(chain_db)
    assert pending() == 1
    await published_agent(chain_db, None)
    await gauges.refresh(chain_db)  # within the interval: not sampled again
    assert pending() == 1
    fresh = ChainJobGauges(metrics, min_interval_s=0)
    await fresh.refresh(chain_db)
    assert pending() == 2
    # Postgres away (nothing listens there): the scrape still answers, the values stay.
    nowhere = await asyncpg.create_pool(
        f"postgresql://agentlink@127.0.0.1:{free_port()}/agentlink", min_size=0, max_size=1
    )
    try:
        await ChainJobGauges(metrics, min_interval_s=0).refresh(nowhere)
    finally:
        await nowhere.close()
    assert pending() == 2
