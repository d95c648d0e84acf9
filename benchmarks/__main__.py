"""``python -m benchmarks``: see ``benchmarks/README.md`` and ``--help``."""

from benchmarks.harness import main

raise SystemExit(main())
