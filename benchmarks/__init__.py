"""Benchmarks: voicehooks against a hand-written floor and what users write instead.

Run ``make bench`` (or ``python -m benchmarks --help``); ``benchmarks/README.md`` has the
method, the caveats and the last results.
"""
