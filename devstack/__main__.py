"""`python -m devstack up`: run the whole stack locally (see devstack/stack.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.stack import run


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "up":
        print("usage: python -m devstack up", file=sys.stderr)
        return 2
    return run(Path(__file__).resolve().parent.parent)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
