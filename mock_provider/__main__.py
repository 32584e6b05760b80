"""``python -m mock_provider --host 127.0.0.1 --port 9100 [--workers N]``."""

from __future__ import annotations

import argparse

from mock_provider.server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mock_provider",
        description="A fast fake OpenAI/Anthropic/Gemini-compatible LLM provider.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="TCP port (default 9100)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args(argv)
    run(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
