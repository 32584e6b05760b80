"""The developer's own account: profile and quota, API keys (create, list, revoke), usage."""
