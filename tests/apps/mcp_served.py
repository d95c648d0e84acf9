"""``tests/apps/mcp_tools``'s app for ``voicehooks run``: the secret and the MCP token come from
the environment."""

from tests.apps.mcp_tools import make_app

app = make_app()
