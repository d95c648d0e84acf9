"""``voicehooks worker`` and ``voicehooks queue``: durable mode's processes and its operator.

Both find the queue (Redis or PostgreSQL) through ``VOICEHOOKS_QUEUE_URL`` (or an
``--env-file``), never through an option: a URL may hold a password. Nothing here prints an
entry's body; dead letters are shown by target, event type and masked call id.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from voicehooks.core import environment as variables
from voicehooks.core.exceptions import ConfigurationError, QueueError
from voicehooks.core.logs import LogFormat, masked
from voicehooks.core.logs import setup as setup_logging
from voicehooks.work.jobs import decode_job
from voicehooks.work.queue import DeadLetter, WorkQueue

from .environment import env_file_option, log_format_option

if TYPE_CHECKING:
    from voicehooks.app import VoiceHooks
    from voicehooks.work.worker import Worker

__all__ = ["queue", "worker"]

T = TypeVar("T")

_stream_options = [
    click.option(
        "--stream",
        default="voicehooks:jobs",
        show_default=True,
        help="The stream's key (PostgreSQL: the queue's name).",
    ),
    click.option(
        "--group",
        default="voicehooks-workers",
        show_default=True,
        help="The consumer group (Redis only).",
    ),
]


def _queue_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_stream_options):
        function = option(function)
    return env_file_option(function)


def _open_queue(stream: str, group: str) -> WorkQueue:
    from voicehooks.work.durable import queue_from_url

    url = variables.read(variables.QUEUE_URL)
    if not url:
        raise click.UsageError(
            f"set {variables.QUEUE_URL}=redis://... or postgresql://... (or put it in an "
            "--env-file)"
        )
    return queue_from_url(url, stream=stream, group=group)


def _run(stream: str, group: str, use: Callable[[WorkQueue], Awaitable[T]]) -> T:
    async def main() -> T:
        redis_queue = _open_queue(stream, group)
        try:
            return await use(redis_queue)
        finally:
            await redis_queue.aclose()

    try:
        return anyio.run(main)
    except (ConfigurationError, QueueError) as exc:  # ConfigurationError: a bad URL
        raise click.ClickException(str(exc)) from None


@click.group()
def queue() -> None:
    """Inspect the durable queue (VOICEHOOKS_QUEUE_URL): backlog, consumers, dead letters.

    \b
    Examples:
        voicehooks queue stats
        voicehooks queue dead --limit 20
        voicehooks queue requeue --all
    """


@queue.command()
@_queue_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(stream: str, group: str, as_json: bool) -> None:
    """The backlog, what each consumer holds, and how many dead letters wait."""
    result = _run(stream, group, lambda q: q.stats())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "stream": stream,
                    "length": result.length,
                    "unread": result.unread,
                    "pending": result.pending,
                    "dead": result.dead,
                    "consumers": [
                        {"name": name, "pending": pending, "idle_seconds": idle}
                        for name, pending, idle in result.consumers
                    ],
                }
            )
        )
        return
    unread = "?" if result.unread is None else str(result.unread)
    click.echo(
        f"{stream}: {result.length} entries ({unread} unread, {result.pending} in progress), "
        f"{result.dead} dead letters"
    )
    if result.consumers:
        rows = [("CONSUMER", "PENDING", "IDLE")] + [
            (name, str(pending), f"{idle:.1f}s") for name, pending, idle in result.consumers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, pending, idle in rows:
            click.echo(f"{name.ljust(widths[0])}  {pending.ljust(widths[1])}  {idle}")


@queue.command()
@_queue_options
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(min=1), help="Most shown."
)
def dead(stream: str, group: str, limit: int) -> None:
    """List dead letters, oldest first: id, when, attempts, reason, target, event, call.

    Bodies are never printed; `requeue` puts a letter back once its cause is fixed.
    """
    letters = _run(stream, group, lambda q: q.dead(limit))
    if not letters:
        click.echo("no dead letters")
        return
    for letter in letters:
        click.echo("  ".join(_describe(letter)))


def _describe(letter: DeadLetter) -> list[str]:
    when = datetime.datetime.fromtimestamp(letter.failed_at, datetime.UTC)
    target = event_type = call_id = "?"
    with contextlib.suppress(Exception):  # a letter voicehooks cannot read is still listed
        job, _ = decode_job(letter.data)
        target, event_type, call_id = job.target, job.event.type, job.event.call.id
    return [
        letter.id,
        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"attempts={letter.attempts}",
        f"reason={letter.reason}",
        target,
        event_type,
        f"call={masked(call_id)}",
    ]


@queue.command()
@_queue_options
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Requeue every dead letter.")
def requeue(stream: str, group: str, ids: tuple[str, ...], everything: bool) -> None:
    """Put dead letters (by id, or --all) back into the queue, as first attempts."""
    if bool(ids) == everything:
        raise click.UsageError("give dead-letter ids (see `voicehooks queue dead`) or --all")
    moved = _run(stream, group, lambda q: q.requeue(None if everything else list(ids)))
    click.echo(f"requeued {moved} dead letter{'' if moved == 1 else 's'}")


@click.command()
@click.argument("target")
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Entries held at once (running or waiting to retry).",
)
@click.option(
    "--claim-idle-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Take over the entries of a worker silent for this long (it died).",
)
@click.option(
    "--max-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs of an entry before it moves to the dead letters.",
)
@click.option(
    "--retry-delay-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Wait before the second attempt; doubles with each further one (at most 5 min).",
)
@click.option(
    "--grace-seconds",
    default=None,
    type=click.FloatRange(min=0),
    help="On SIGTERM, how long held entries may finish [default: the app's shutdown grace].",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--health-port",
    default=None,
    type=click.IntRange(min=1, max=65535),
    envvar="VOICEHOOKS_WORKER_HEALTH_PORT",
    show_envvar=True,
    help="Serve the health probes (GET /healthz, /healthz/ready) on this port [default: none].",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    envvar="VOICEHOOKS_WORKER_HEALTH_HOST",
    show_envvar=True,
    help="The address of the health port (0.0.0.0 for a Kubernetes probe).",
)
@log_format_option
@env_file_option
def worker(
    target: str,
    concurrency: int,
    claim_idle_seconds: float,
    max_attempts: int,
    retry_delay_seconds: float,
    grace_seconds: float | None,
    log_level: str,
    log_format: LogFormat,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run TARGET's after-the-answer work from the durable queue (VOICEHOOKS_QUEUE_URL).

    The same app as `voicehooks run` serves: its handlers, injection, deadlines and error
    hooks. An entry is acknowledged once its handler finished; a failure retries with a
    growing delay, then moves to the dead letters. SIGTERM stops reading and lets held work
    finish within the grace period; what is left stays pending for other workers.

    \b
    Example:
        VOICEHOOKS_QUEUE_URL=redis://localhost:6379/0 voicehooks worker myapp:app --concurrency 16
    """
    from voicehooks.cli import _inspect
    from voicehooks.work.worker import Worker

    setup_logging(log_format, log_level)
    app = _inspect(target)  # a worker verifies nothing: it may run without the secret
    if app.queue is None:
        raise click.UsageError(
            f"{target} has no durable queue: set {variables.QUEUE_URL}=redis://... or "
            "postgresql://... (the "
            "receivers' value) or pass VoiceHooks(background=Background(queue=...))"
        )
    from voicehooks.state.stores import MemoryStore
    from voicehooks.work.durable import QueuedJobs

    if isinstance(app.store, MemoryStore):
        click.echo(
            "warning: the duplicate store is in memory: a job another worker finished and "
            "could not acknowledge runs again here. Give the app a RedisStore or a "
            "PostgresStore (or set VOICEHOOKS_STORE_URL) to share the done marks.",
            err=True,
        )

    if grace_seconds is not None:  # one grace period for the worker's entries and the app
        app.tasks.grace_seconds = grace_seconds
    dispatcher = app.dispatcher
    runner = Worker(
        app.queue,
        QueuedJobs(dispatcher.run_job, dispatcher.deduplicator, max_attempts=max_attempts),
        concurrency=concurrency,
        claim_idle_seconds=claim_idle_seconds,
        max_attempts=max_attempts,
        retry_delay_seconds=retry_delay_seconds,
        tasks=app.tasks,
    )
    health = (health_host, health_port) if health_port is not None else None
    anyio.run(functools.partial(_serve, app, runner, health=health))


async def _serve(
    app: VoiceHooks,
    runner: Worker,
    stop: anyio.Event | None = None,
    health: tuple[str, int] | None = None,
) -> None:
    """Run ``runner`` inside the app's lifespan until SIGTERM or SIGINT (or ``stop``).

    With ``health`` (host, port), the app's probes are served there too: live while the
    worker runs, ready inside the lifespan while the queue's Redis answers.
    """
    stop = stop or anyio.Event()
    logging.getLogger("voicehooks").info(
        "worker %s: consuming %s with concurrency %d",
        runner.consumer,
        runner.queue.stream,
        runner.concurrency,
    )
    async with app.lifespan(), anyio.create_task_group() as group:

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    if stop.is_set():
                        group.cancel_scope.cancel()  # a second signal: stop now
                    stop.set()

        group.start_soon(on_signals)
        if health is not None:
            group.start_soon(_serve_health, app, *health)
        await runner.serve(stop)
        group.cancel_scope.cancel()


async def _serve_health(app: VoiceHooks, host: str, port: int) -> None:
    """The probes on their own small server; cancelled with the worker."""
    if app.health.path is None:  # the app serves no probes: Health(path=None)
        return
    import uvicorn
    from starlette.applications import Starlette

    class ProbeServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the worker handles SIGTERM and SIGINT, not this server

    probes = Starlette(routes=list(app.health.routes(app.tools)))
    config = uvicorn.Config(
        probes, host=host, port=port, lifespan="off", access_log=False, log_config=None
    )
    logging.getLogger("voicehooks").info(
        "worker: health probes on http://%s:%d%s", host, port, app.health.path
    )
    await ProbeServer(config).serve()
