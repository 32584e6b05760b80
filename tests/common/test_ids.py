"""The per-call ids (common/ids.py) are version 4 UUIDs, written as `uuid` writes them."""

from __future__ import annotations

import uuid

from common.ids import uuid4_hex, uuid4_str


def test_ids_are_random_rfc_4122_version_4_uuids_in_uuids_own_spelling() -> None:
    hexes, texts = {uuid4_hex() for _ in range(2000)}, {uuid4_str() for _ in range(2000)}
    assert len(hexes) == len(texts) == 2000
    for made, spelled in [*((h, "hex") for h in hexes), *((t, "str") for t in texts)]:
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert (parsed.hex if spelled == "hex" else str(parsed)) == made
    # Every random digit takes every value: no bit is stuck.
    for position in (*range(12), *range(13, 16), *range(17, 32)):
        assert len({h[position] for h in hexes}) == 16, position
    assert {h[16] for h in hexes} == set("89ab")
