"""The app tests/mcp serves over MCP, in process and under ``voicehooks run`` (``mcp_served``)."""

from __future__ import annotations

from voicehooks import CallContext, CallState, LiveCall, Mcp, ToolError, VoiceHooks


def make_app(tokens: tuple[str, ...] = (), **kwargs: object) -> VoiceHooks:
    """The app; ``tokens`` empty: the environment's."""
    app = VoiceHooks(mcp=Mcp(tokens=tokens), **kwargs)  # type: ignore[arg-type]

    @app.tool
    async def book_table(party_size: int, day: str = "today") -> dict[str, object]:
        """Book a table.

        Args:
            party_size: How many people.
            day: Which day.
        """
        if party_size > 8:
            raise ToolError(f"No table for {party_size}: at most 8.")
        return {"booked": True, "party_size": party_size, "day": day}

    @app.tool
    def opening_hours() -> str:
        """When the restaurant is open."""
        return "Noon to 10 pm."

    @app.tool
    async def whoami(context: CallContext | None) -> str:
        """Who is calling, when a call is known."""
        return "nobody" if context is None else context.call_id

    @app.tool
    async def crash() -> str:
        """A tool with a bug."""
        raise RuntimeError("SECRET-INTERNALS-9f1")

    @app.tool
    async def hang_up(call: LiveCall) -> None:
        """End the call."""

    @app.tool
    async def remember(state: CallState) -> None:
        """Remember something for the call."""

    @app.tool
    async def call_id(context: CallContext) -> str:
        """The call's id."""
        return context.call_id

    @app.tool(once_per_call=True)
    async def charge() -> str:
        """Charge the card once."""
        return "charged"

    @app.tool(fire_and_forget=True)
    async def send_brochure() -> None:
        """Send the brochure."""

    @app.tool(interim="One moment.")
    async def slow_search() -> str:
        """Search slowly."""
        return "found"

    return app
