"""``python -m voicehooks``: the same as the ``voicehooks`` command."""

from .cli import main

main()
