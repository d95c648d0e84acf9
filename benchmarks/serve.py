"""Serve one contender with uvicorn for the HTTP level.

``python -m benchmarks.serve NAME PORT``: one worker on 127.0.0.1, uvloop and httptools, no
access log, lifespan on. The harness pins this process to its own core. Every contender's
startup heap is frozen (``gc.freeze()``) once its app is built, as ``voicehooks run`` does for
its app: the same process setup for all, so only the frameworks differ.
"""

from __future__ import annotations

import gc
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
    app = contenders.make_app(name, SECRET)
    gc.freeze()
    uvicorn.run(
        app,
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
