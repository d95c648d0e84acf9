"""An app that does not verify signatures: it has no secret ``deploy --set-secret`` could write."""

from voicehooks import VoiceHooks

app = VoiceHooks(verify_signatures=False)


@app.tool
def ping() -> str:
    """Answer pong, to check the webhook is reached."""
    return "pong"
