"""`EMBEDDING_RUNTIME` reaches the processes that run the model, as real processes: the worker
(`python -m control_plane.worker`) embeds an uploaded file with the configured runtime, and the
embedding service a gateway starts for its first knowledge call runs it too, and the worker's
periodic job re-embeds chunks of another model; the runtime a
process loaded is read from its memory map (ONNX Runtime's shared library is there, or not).
An unknown runtime stops the worker and the gateway at start-up, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from common.knowledge.openai_embedder import OpenAIEmbedder
from common.knowledge.settings import EmbeddingSettings
from common.knowledge.vectors import RUNTIMES
from devstack.servers import free_port
from tests.common.knowledge.test_embedding_service import gone, loaded_libraries, service_pids
from tests.control_plane.api_client import bearer, register
from tests.gateway.helpers import agent_sdk, gateway_process
from tests.knowledge_support import developer_key, knowledge_ingester, ready_agent
from tests.processes import Servers, serve_gateway, worker_env
from tests.processes import gateway_env as gateway_env_for
from tests.support import wait_until
from tests.test_knowledge_end_to_end import SECRET_FACT, publish_agent

ROOT = Path(__file__).resolve().parents[1]


def runs_onnx(pid: int) -> bool:
    return "onnxruntime" in loaded_libraries(pid)


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def worker(
    servers: Servers, database_url: str, tmp_path: Path, runtime: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m control_plane.worker` with EMBEDDING_RUNTIME=`runtime`."""
    env = os.environ | worker_env(database_url, servers.redis_url, EMBEDDING_RUNTIME=runtime,
                                  KNOWLEDGE_REEMBED_INTERVAL_S="0.2")  # fmt: skip
    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.worker"], cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield process
    process.kill()
    process.wait(timeout=15)
    print(log.read_text()[-3000:])  # shown by pytest only when the test failed


async def test_the_worker_and_the_gateways_service_run_the_configured_runtime(
    gateway_env: dict[str, str], control_url: str, worker: subprocess.Popen[bytes],
    db_pool: asyncpg.Pool, runtime: str,
) -> None:  # fmt: skip
    socket_path = Path(f"/tmp/agentlink-wiring-{os.getpid()}-{runtime}/embedding.sock")
    upload = [("file", ("facts.txt", SECRET_FACT.encode()))]
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        creator = bearer((await register(api, "creator"))["access_token"])
        agent_id = await publish_agent(api, creator, knowledge={"enabled": True})
        uploaded = await api.post(
            f"/api/v1/agents/{agent_id}/knowledge", headers=creator, files=upload
        )
        assert uploaded.status_code == 202, uploaded.text

        async def ready() -> bool:
            listed = await api.get(f"/api/v1/agents/{agent_id}/knowledge", headers=creator)
            return [f["status"] for f in listed.json()["items"]] == ["ready"]

        await wait_until(ready, 120, "the worker to index the file")
        key = await developer_key(api)
    assert worker.poll() is None
    assert runs_onnx(worker.pid) == (runtime == "onnx")

    gateway = gateway_env | {"UPSTREAM_TIMEOUT_S": "30", "EMBEDDING_RUNTIME": runtime,
                             "EMBEDDING_SOCKET": str(socket_path)}  # fmt: skip
    with serve_gateway(gateway) as gateway_url:
        async with agent_sdk(gateway_url, agent_id, key) as client:
            reply = await client.chat.completions.create(
                model="ignored",
                messages=[{"role": "user", "content": "Halden desk code? [[mock echo_system]]"}],
            )
        assert "seven four one nine" in (reply.choices[0].message.content or "")
        (service,) = service_pids(socket_path)
        assert runs_onnx(service) == (runtime == "onnx")
    assert gone(socket_path)

    # Chunks of another model (EMBEDDING_* changed) are re-embedded by the worker's job, and
    # the agent's knowledge version moves on.
    version = await db_pool.fetchval("SELECT knowledge_version FROM agents WHERE id = $1",
                                     agent_id)  # fmt: skip
    await db_pool.execute("UPDATE knowledge_chunks SET embedding_model = 'openai/old-model'"
                          " WHERE agent_id = $1", agent_id)  # fmt: skip

    async def reembedded() -> bool:
        models = await db_pool.fetch("SELECT DISTINCT embedding_model FROM knowledge_chunks"
                                     " WHERE agent_id = $1", agent_id)  # fmt: skip
        bumped = await db_pool.fetchval("SELECT knowledge_version FROM agents WHERE id = $1",
                                        agent_id)  # fmt: skip
        return [row[0] for row in models] == ["local/all-MiniLM-L6-v2"] and bumped > version

    await wait_until(reembedded, 60, "the worker to re-embed the chunks")
    assert worker.poll() is None


async def test_a_gateway_worker_on_the_openai_backend_loads_no_numpy_and_no_blas(
    *, servers: Servers, database_url: str, mock_provider_url: str, control_url: str,
    db_pool: asyncpg.Pool, tmp_path: Path,
) -> None:  # fmt: skip
    """EMBEDDING_BACKEND=openai: the uvicorn worker embeds each question itself. NumPy's
    OpenBLAS would start a thread per core at import, next to the event loop; the worker maps
    neither (read from its memory map after a knowledge call), so no call can start them."""
    embedding = {"EMBEDDING_BACKEND": "openai", "EMBEDDING_BASE_URL": f"{mock_provider_url}/v1",
                 "EMBEDDING_API_KEY": "mock-key"}  # fmt: skip
    embedder = OpenAIEmbedder(EmbeddingSettings.from_env(embedding))
    async with knowledge_ingester(db_pool, servers.redis_url, embedder) as ingester,\
            httpx.AsyncClient(base_url=control_url, timeout=30) as api:  # fmt: skip
        agent_id, key = await ready_agent(api, ingester, SECRET_FACT, prompt="BLAS-FREE-PROMPT")
    # The mock's vectors are hashes of the text: no question is similar to a passage.
    env = gateway_env_for(database_url, servers.redis_url, mock_provider_url, **embedding,
                          KNOWLEDGE_SIMILARITY_THRESHOLD="-1")  # fmt: skip
    with gateway_process(env, tmp_path / "gateway.log") as gateway:
        await gateway.wait_until_ready()
        async with agent_sdk(gateway.url, agent_id, key) as client:
            reply = await client.chat.completions.create(
                model="ignored",
                messages=[{"role": "user", "content": "Halden desk code? [[mock echo_system]]"}],
            )
        assert "seven four one nine" in (reply.choices[0].message.content or "")
        maps = loaded_libraries(gateway.process.pid)
    assert "openblas" not in maps
    assert "numpy" not in maps


BLAS_THREADS = """
import ctypes, sys
import control_plane.worker as worker
from common.knowledge.backends import build_embedder
from common.knowledge.settings import EmbeddingSettings

assert "numpy" not in sys.modules, "the worker imports NumPy before it may limit its threads"
worker.limit_native_threads()
build_embedder(EmbeddingSettings.from_env({"EMBEDDING_RUNTIME": "numpy"})).embed_sync(["a b c"])
(path,) = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line}
print(ctypes.CDLL(path).scipy_openblas_get_num_threads64_())
"""


def test_the_worker_runs_numpy_on_one_blas_thread() -> None:
    """EMBEDDING_RUNTIME=numpy in the worker: OpenBLAS, loaded with the model, runs on one
    thread (each batch has one of its own), not one per core."""
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", BLAS_THREADS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def start_up(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=os.environ | env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


UNREACHABLE = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
               "REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip


def test_an_unknown_runtime_stops_the_worker_at_start_up() -> None:
    done = start_up([sys.executable, "-m", "control_plane.worker"],
                    UNREACHABLE | {"EMBEDDING_RUNTIME": "torch"})  # fmt: skip
    assert done.returncode != 0
    assert "EMBEDDING_RUNTIME must be one of onnx, numpy" in done.stderr


def test_an_unknown_runtime_stops_the_gateway_at_start_up() -> None:
    env = gateway_env_for(UNREACHABLE["DATABASE_URL"], UNREACHABLE["REDIS_URL"],
                      EMBEDDING_RUNTIME="torch")  # fmt: skip
    command = [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
               "--host", "127.0.0.1", "--port", str(free_port())]  # fmt: skip
    done = start_up(command, env)
    assert done.returncode != 0
    assert "EMBEDDING_RUNTIME must be one of onnx, numpy" in done.stderr
