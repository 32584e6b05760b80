"""Agents: a creator's drafts, their encrypted configs, the append-only version history, and
publishing (written through to the gateway's Redis record in the same transaction)."""
