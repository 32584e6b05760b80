"""A fake Stripe: one module per resource (checkout sessions, charges and payment intents,
refunds), each contributing its routes. To add a resource (e.g. transfers, accounts), write a
module with `routes(fake) -> list[Route]` and list it in `app.py`."""
