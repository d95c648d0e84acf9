"""Serve one contender with uvicorn for the HTTP level.

``python -m benchmarks.serve NAME PORT``: one worker on 127.0.0.1, uvloop and httptools, no
access log, lifespan on. The harness pins this process to its own core.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvicorn

from benchmarks import contenders
from benchmarks.workloads import SECRET


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m benchmarks.serve NAME PORT", file=sys.stderr)
        return 2
    name, port = args[0], int(args[1])
    uvicorn.run(
        contenders.make_app(name, SECRET),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
