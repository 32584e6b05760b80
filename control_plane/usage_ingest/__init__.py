"""Usage ingestion: the worker end of the per-shard usage streams `usage:{sS}`.

The gateway's commit script and the worker's reaper append one usage event per call to the
call's shard stream (`common/usage_events.py`); this package moves them into Postgres, one
file per job:

- `streams.py` — **read** (one consumer group on all 1024 streams; one XREADGROUP names them
  all; on a Redis Cluster, one pipeline per primary), **acknowledge** (XACK and XDEL only
  after the batch committed), dead letters, claims of entries a dead consumer left pending,
  lag;
- `parse.py` — **parse** every entry into a `UsageEvent` that `call_logs` will accept; a
  malformed one is dead-lettered and acknowledged, so it can never block its stream;
- `write.py` — **write** a batch as ONE SQL statement (call_logs rows and every aggregate
  they move, exactly once: a redelivered event conflicts and moves nothing);
- `ingester.py` — `UsageIngester`, which runs read → parse → write → acknowledge, and the
  worker's long-running loop with its retries (`common/retry.py`).

A crash between the write and the acknowledgement redelivers the entries; their rows already
exist (the event carries its own timestamp, so the conflict key is the same), so nothing is
inserted and no aggregate moves twice. Throughput: `loadtests/ingest_throughput.py` measures
it; the loop logs its rate once a minute and the worker exports counters and a batch-time
histogram (`control_plane/worker_metrics.py`).
"""

from __future__ import annotations

from control_plane.usage_ingest.ingester import (
    BatchResult,
    UsageIngester,
    default_consumer_name,
    ingest_once,
)
from control_plane.usage_ingest.parse import parse_entry
from control_plane.usage_ingest.streams import (
    DEAD_LETTER_STREAM,
    GROUP,
    STREAMS,
    StreamEntry,
    StreamLag,
)

__all__ = [
    "DEAD_LETTER_STREAM",
    "GROUP",
    "STREAMS",
    "BatchResult",
    "StreamEntry",
    "StreamLag",
    "UsageIngester",
    "default_consumer_name",
    "ingest_once",
    "parse_entry",
]
