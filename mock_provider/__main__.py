"""``python -m mock_provider --host 127.0.0.1 --port 9100 [--workers N] [--prompt-cache]``."""

from __future__ import annotations

import argparse
import os

from mock_provider.server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mock_provider",
        description="A fast fake OpenAI/Anthropic/Gemini-compatible LLM provider.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="TCP port (default 9100)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--prompt-cache", action="store_true",
        help="report repeated prompt prefixes as cached on every request (default: only on "
        "requests with the `cache` control)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.prompt_cache:
        os.environ["MOCK_PROMPT_CACHE"] = "1"  # read by create_app in each worker
    run(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
