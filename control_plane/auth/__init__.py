"""Accounts and authentication: register, login, tokens, roles and permissions."""
