"""Local development and test infrastructure: embedded PostgreSQL and Valkey, the whole stack."""
