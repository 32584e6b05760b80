"""The `openai` embedding backend (EMBEDDING_BACKEND=openai) against the project's mock of an
OpenAI-compatible `/v1/embeddings`, over real HTTP: both builders pick it, vectors come back
in order, 384 wide and of unit length, however many texts (several requests), with the key
and the stored width asked for; failures are EmbeddingErrors that never quote the texts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import pytest_asyncio

from common.knowledge.backends import build_embedder, build_question_embedder
from common.knowledge.openai_embedder import OpenAIEmbedder
from common.knowledge.settings import EmbeddingSettings
from common.knowledge.vectors import STORED_DIMENSION, EmbeddingError
from devstack.servers import free_port
from mock_provider.embeddings import vector

SECRET = "creator-content-never-in-an-error"


def settings(base_url: str) -> EmbeddingSettings:
    return EmbeddingSettings.from_env({
        "EMBEDDING_BACKEND": "openai", "EMBEDDING_BASE_URL": base_url,
        "EMBEDDING_API_KEY": "embed-test-key", "EMBEDDING_MODEL": "text-embedding-3-small",
        "EMBEDDING_TIMEOUT_S": "5",
    })  # fmt: skip


@pytest_asyncio.fixture
async def embedder(mock_provider_url: str) -> AsyncIterator[OpenAIEmbedder]:
    built = build_embedder(settings(f"{mock_provider_url}/v1/"))
    assert isinstance(built, OpenAIEmbedder)
    yield built
    await built.aclose()


async def requests_with(mock_provider_url: str, marker: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        logged = (await client.get(f"{mock_provider_url}/_mock/requests")).json()
    return [r for r in logged if r["path"] == "/v1/embeddings" and marker in str(r["body"])]


async def test_vectors_in_order_of_the_stored_width(
    embedder: OpenAIEmbedder, mock_provider_url: str
) -> None:
    texts = [f"chunk {n} of the batch-order-marker file" for n in range(70)]  # two requests
    vectors = await embedder.embed(texts)

    assert embedder.model == "openai/text-embedding-3-small"
    assert vectors.shape == (70, STORED_DIMENSION)
    expected = np.array([vector(text, STORED_DIMENSION) for text in texts], dtype=np.float32)
    assert np.abs(vectors - expected).max() < 1e-6
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    sent = await requests_with(mock_provider_url, "batch-order-marker")
    assert [len(r["body"]["input"]) for r in sent] == [64, 6]  # type: ignore[index]
    for request in sent:
        assert request["body"]["dimensions"] == STORED_DIMENSION  # type: ignore[index]
        assert request["headers"]["authorization"] == "Bearer embed-test-key"  # type: ignore[index]
    assert (await embedder.embed([])).shape == (0, STORED_DIMENSION)


async def test_the_gateway_builds_the_same_backend(mock_provider_url: str) -> None:
    question = build_question_embedder(settings(f"{mock_provider_url}/v1"))
    try:
        assert question.model == "openai/text-embedding-3-small"
        row = await question.embed_question("a question")
        assert np.abs(np.array(row) - vector("a question", STORED_DIMENSION)).max() < 1e-6
    finally:
        await question.aclose()


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_a_refusal_is_an_embedding_error_without_the_texts(
    embedder: OpenAIEmbedder, status: int
) -> None:
    with pytest.raises(EmbeddingError, match=f"answered {status}") as error:
        await embedder.embed([f"{SECRET} [[mock status={status}]]"])
    assert SECRET not in str(error.value)


async def test_an_unreachable_endpoint_is_an_embedding_error() -> None:
    unreachable = build_embedder(settings(f"http://127.0.0.1:{free_port()}/v1"))
    try:
        with pytest.raises(EmbeddingError, match="unreachable") as error:
            await unreachable.embed([SECRET])
        assert SECRET not in str(error.value)
    finally:
        await unreachable.aclose()
