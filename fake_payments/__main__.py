"""``python -m fake_payments stripe|coinbase --port N --webhook-url URL --webhook-secret S``."""

from __future__ import annotations

import argparse

import uvicorn

from fake_payments.coinbase.app import create_coinbase_app
from fake_payments.config import FakeConfig
from fake_payments.stripe.app import create_stripe_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fake_payments", description="A fake Stripe or Coinbase Commerce."
    )
    parser.add_argument("provider", choices=["stripe", "coinbase"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--webhook-url", default=None, help="where signed events are POSTed")
    parser.add_argument(
        "--webhook-secret", action="append", default=[], help="signing secret (repeatable)"
    )
    parser.add_argument("--public-url", default=None, help="base URL of hosted pages")
    args = parser.parse_args(argv)
    public_url = args.public_url or f"http://{args.host}:{args.port}"
    config = FakeConfig(
        public_url=public_url, webhook_url=args.webhook_url,
        webhook_secrets=tuple(args.webhook_secret),
    )  # fmt: skip
    app = create_stripe_app(config) if args.provider == "stripe" else create_coinbase_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
