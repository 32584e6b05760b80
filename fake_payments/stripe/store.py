"""The fake's objects, in memory, by kind and id; every object is a plain JSON-ready dict in
Stripe's own shape, so what the API returns and what events carry are the same thing."""

from __future__ import annotations

import copy
from typing import Any

from fake_payments.stripe.wire import not_found


class StripeStore:
    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Any]]] = {}
        # idempotency key -> (request fingerprint, status, body)
        self.idempotent: dict[str, tuple[bytes, int, bytes]] = {}

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._objects.setdefault(obj["object"], {})[obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self._objects.get(kind, {}).get(object_id)
        if found is None:
            raise not_found(kind.replace("checkout.session", "checkout.session"), object_id)
        return found

    def find(self, kind: str, object_id: str) -> dict[str, Any] | None:
        return self._objects.get(kind, {}).get(object_id)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self._objects.get(kind, {}).values())

    @staticmethod
    def snapshot(obj: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(obj)
