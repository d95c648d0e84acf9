"""The app's tools over MCP: the platform, an MCP client, calls them as a remote MCP server's.

``VoiceHooks(mcp=Mcp(tokens=[...]))`` (or ``VOICEHOOKS_MCP_TOKEN``) serves an MCP endpoint at
``Mcp.path`` (``/mcp``) beside the webhook, in the same ASGI app: Streamable HTTP, stateless,
behind a bearer token; without a token there is no endpoint. Modules: ``offer`` (which tools
are offered, and why the others are not) and ``endpoint`` (the transport).

``offered(app) -> (tools, withheld)`` is the one answer to "what does MCP offer": the
endpoint lists what it returns, ``voicehooks tools --check`` prints the reasons of what it
withholds, a startup line names them, and a deploy that attaches the app's MCP server to an
assistant (``allowed_tools``, at most 25) reads the names from it.
"""

from .endpoint import McpEndpoint
from .offer import offered, withheld_because

__all__ = ["McpEndpoint", "offered", "withheld_because"]
