"""Agent reviews: eligibility-checked submission, public listing, and moderation (which keeps
the agent's rating aggregate exact)."""
