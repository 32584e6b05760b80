"""The public marketplace: full-text search with filters, agent detail, categories, featured."""
