"""``voicehooks worker`` and ``voicehooks queue``: durable mode's processes and its operator.

Both find the queue (Redis or PostgreSQL) through ``VOICEHOOKS_QUEUE_URL`` (or an
``--env-file``), and the queue key through ``VOICEHOOKS_QUEUE_KEY``, never through an option:
a URL may hold a password, and options end up in shell histories and process lists.
``voicehooks queue dead`` shows a letter's body opened with that key and redacted by
``voicehooks.privacy`` (every string, a transcript's turns read together); ``--raw`` shows it
as it is.
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
from voicehooks.core.logs import LogFormat, duration, masked
from voicehooks.core.logs import setup as setup_logging
from voicehooks.work.durable import default_queue, open_job
from voicehooks.work.jobs import UnreadableJob
from voicehooks.work.queue import DeadLetter, QueueStats, WorkQueue
from voicehooks.work.sealing import Sealer, new_key, sealed_with, sealer_for

from .environment import env_file_option, log_format_option

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from voicehooks.app import VoiceHooks
    from voicehooks.work.worker import Worker

__all__ = ["queue", "worker"]

T = TypeVar("T")

_LANGUAGES = ("en", "nl")  # what queue dead reads spoken numbers and context words in

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
    queue = default_queue(stream=stream, group=group)
    if queue is None:
        raise click.UsageError(
            f"set {variables.QUEUE_URL}=redis://... or postgresql://... (or put it in an "
            "--env-file)"
        )
    return queue


def _run(stream: str, group: str, use: Callable[[WorkQueue], Awaitable[T]]) -> T:
    async def main() -> T:
        redis_queue = _open_queue(stream, group)  # a bad URL or bound: ConfigurationError
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
        voicehooks queue new-key
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
                    "max_dead": result.max_dead,
                    "max_dead_age_seconds": result.max_dead_age_seconds,
                    "oldest_dead_seconds": result.oldest_dead_seconds,
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
        f"{_dead_summary(result)}"
    )
    if result.consumers:
        rows = [("CONSUMER", "PENDING", "IDLE")] + [
            (name, str(pending), f"{idle:.1f}s") for name, pending, idle in result.consumers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, pending, idle in rows:
            click.echo(f"{name.ljust(widths[0])}  {pending.ljust(widths[1])}  {idle}")


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _dead_summary(result: QueueStats) -> str:
    oldest = ""
    if result.oldest_dead_seconds is not None:
        oldest = f"the oldest {_age(result.oldest_dead_seconds)} old; "
    return (
        f"{result.dead} dead letters ({oldest}kept: at most {result.max_dead}, for "
        f"{duration(result.max_dead_age_seconds)})"
    )


@queue.command()
@_queue_options
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(min=1), help="Most shown."
)
@click.option(
    "--raw", is_flag=True, help="Show the bodies as they are: personal data not redacted."
)
def dead(stream: str, group: str, limit: int, raw: bool) -> None:
    """List dead letters, oldest first: id, when, attempts, reason, target, event, call, key,
    and on the next line the body.

    A sealed letter is opened with VOICEHOOKS_QUEUE_KEY. In the body, card numbers, IBANs,
    phone numbers, e-mail addresses and the other kinds of voicehooks.privacy are replaced
    by their kind ([card], [phone], ...); names and addresses are not found. --raw shows the
    body as it is. `requeue` puts a letter back once its cause is fixed.
    """

    async def read(redis_queue: WorkQueue) -> tuple[Sealer, list[DeadLetter]]:
        return sealer_for(None), await redis_queue.dead(limit)

    sealer, letters = _run(stream, group, read)
    if not letters:
        click.echo("no dead letters")
        return
    for letter in letters:
        header, body = _describe(letter, sealer, raw)
        click.echo("  ".join(header))
        click.echo(f"  {body}")


def _describe(letter: DeadLetter, sealer: Sealer, raw: bool) -> tuple[list[str], str]:
    """A letter's header fields and its body (redacted unless ``raw``), never raising: a
    letter voicehooks cannot read is still listed, with the reason why."""
    when = datetime.datetime.fromtimestamp(letter.failed_at, datetime.UTC)
    target = event_type = call_id = "?"
    try:
        job, _ = open_job(sealer, letter.data)
    except UnreadableJob as exc:
        body = f"(unreadable: {exc})"
    else:
        target, event_type, call_id = job.target, job.event.type, job.event.call.id
        body = _body(job.event.__dict__.get("_body", b""), raw)
    header = [
        letter.id,
        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"attempts={letter.attempts}",
        f"reason={letter.reason}",
        target,
        event_type,
        f"call={masked(call_id)}",
        f"key={sealed_with(letter.data) or 'none'}",
    ]
    return header, body


def _body(body: bytes, raw: bool) -> str:
    if raw:
        return body.decode("utf-8", "replace").strip()
    try:
        decoded = json.loads(body)
    except ValueError:
        return "(not JSON)"
    from voicehooks.privacy import redact_json

    return json.dumps(redact_json(decoded, languages=_LANGUAGES), ensure_ascii=False)


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


@queue.command("new-key")
def new_key_command() -> None:
    """Print a fresh queue key: 32 random bytes in base64url, for VOICEHOOKS_QUEUE_KEY.

    \b
    To rotate: add the new key last everywhere (VOICEHOOKS_QUEUE_KEY=old,new), then first
    (new,old), and drop the old one once no entry or dead letter sealed with it is left
    (`voicehooks queue dead` shows each letter's key id).
    """
    click.echo(new_key())


@click.command()
@click.argument("target")
@click.option(
    "--concurrency",
    envvar="VOICEHOOKS_WORKER_CONCURRENCY",
    show_envvar=True,
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Entries held at once (running or waiting to retry).",
)
@click.option(
    "--claim-idle-seconds",
    envvar="VOICEHOOKS_WORKER_CLAIM_IDLE_SECONDS",
    show_envvar=True,
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Take over the entries of a worker silent for this long (it died).",
)
@click.option(
    "--max-attempts",
    envvar="VOICEHOOKS_WORKER_MAX_ATTEMPTS",
    show_envvar=True,
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs of an entry before it moves to the dead letters.",
)
@click.option(
    "--retry-delay-seconds",
    envvar="VOICEHOOKS_WORKER_RETRY_DELAY_SECONDS",
    show_envvar=True,
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Wait before the second attempt; doubles with each further one (at most 5 min).",
)
@click.option(
    "--max-dead",
    default=None,
    type=click.IntRange(min=1),
    help="Most dead letters kept; the oldest go first [default: the app's queue: "
    "VOICEHOOKS_QUEUE_MAX_DEAD or 10000].",
)
@click.option(
    "--max-dead-age-seconds",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Dead letters older than this are deleted [default: the app's queue: "
    "VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS or 604800, 7 days].",
)
@click.option(
    "--grace-seconds",
    envvar="VOICEHOOKS_WORKER_GRACE_SECONDS",
    show_envvar=True,
    default=None,
    type=click.FloatRange(min=0),
    help="On SIGTERM, how long held entries may finish [default: the app's shutdown grace].",
)
@click.option(
    "--log-level",
    envvar="VOICEHOOKS_LOG_LEVEL",
    show_envvar=True,
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
@click.option(
    "--forget-idle-seconds",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    envvar="VOICEHOOKS_WORKER_FORGET_IDLE_SECONDS",
    show_envvar=True,
    help="Remove consumers (dead workers) that hold nothing and were idle this long.",
)
@click.option(
    "--metrics",
    is_flag=True,
    envvar="VOICEHOOKS_METRICS",
    show_envvar=True,
    help="Serve Prometheus metrics at GET /metrics on the health port (the [metrics] extra).",
)
@log_format_option
@env_file_option
def worker(
    target: str,
    concurrency: int,
    claim_idle_seconds: float,
    max_attempts: int,
    retry_delay_seconds: float,
    max_dead: int | None,
    max_dead_age_seconds: float | None,
    grace_seconds: float | None,
    log_level: str,
    log_format: LogFormat,
    health_port: int | None,
    health_host: str,
    forget_idle_seconds: float,
    metrics: bool,
) -> None:
    """Run TARGET's after-the-answer work from the durable queue (VOICEHOOKS_QUEUE_URL).

    The same app as `voicehooks run` serves: its handlers, injection, deadlines and error
    hooks, and its queue key (VOICEHOOKS_QUEUE_KEY) to open sealed entries. An entry is
    acknowledged once its handler finished; a failure retries with a growing delay, then
    moves to the dead letters (one it cannot read, at once); those are kept within
    --max-dead and --max-dead-age-seconds. SIGTERM stops reading and lets held work
    finish within the grace period; what is left stays pending for other workers.

    \b
    Example:
        VOICEHOOKS_QUEUE_URL=redis://localhost:6379/0 voicehooks worker myapp:app --concurrency 16
    """
    from voicehooks.cli import _inspect
    from voicehooks.work.worker import Worker

    setup_logging(log_format, log_level)
    if metrics and health_port is None:
        raise click.UsageError(
            "--metrics are served on the health port: add --health-port (or set "
            "VOICEHOOKS_WORKER_HEALTH_PORT)"
        )
    if metrics:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise click.UsageError(
                "--metrics needs prometheus_client: pip install 'voicehooks[metrics]'"
            ) from None
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
    if max_dead is not None:  # the worker is what buries: its bounds are the ones kept
        app.queue.max_dead = max_dead
    if max_dead_age_seconds is not None:
        app.queue.max_dead_age_seconds = max_dead_age_seconds
    assert app.durable is not None  # it holds the queue
    dispatcher = app.dispatcher
    runner = Worker(
        app.queue,
        QueuedJobs(
            dispatcher.run_job,
            dispatcher.deduplicator,
            max_attempts=max_attempts,
            sealer=app.durable.sealer,
        ),
        concurrency=concurrency,
        claim_idle_seconds=claim_idle_seconds,
        max_attempts=max_attempts,
        retry_delay_seconds=retry_delay_seconds,
        tasks=app.tasks,
        on_trimmed=app.observers.dead_letters_trimmed,
        forget_idle_seconds=forget_idle_seconds,
    )
    health = (health_host, health_port) if health_port is not None else None
    anyio.run(functools.partial(_serve, app, runner, health=health, metrics=metrics))


async def _serve(
    app: VoiceHooks,
    runner: Worker,
    stop: anyio.Event | None = None,
    health: tuple[str, int] | None = None,
    metrics: bool = False,
) -> None:
    """Run ``runner`` inside the app's lifespan until SIGTERM or SIGINT (or ``stop``).

    With ``health`` (host, port), the app's probes are served there too: live while the
    worker runs, ready inside the lifespan while the queue's Redis answers; with ``metrics``,
    ``GET /metrics`` beside them.
    """
    stop = stop or anyio.Event()
    log = logging.getLogger("voicehooks")
    log.info(
        "worker %s: consuming %s with concurrency %d",
        runner.consumer,
        runner.queue.stream,
        runner.concurrency,
    )
    async with app.lifespan(), anyio.create_task_group() as group:

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for received in signals:
                    name = signal.Signals(received).name
                    if stop.is_set():
                        log.warning("worker %s: %s again; stopping now", runner.consumer, name)
                        group.cancel_scope.cancel()  # a second signal: stop now
                    log.info("worker %s: %s; reading no more", runner.consumer, name)
                    stop.set()

        group.start_soon(on_signals)
        if health is not None:
            routes = list(app.health.routes(app.tools))
            if metrics:
                from voicehooks.observe.metrics import WorkerMetrics

                queue = runner.queue
                routes += WorkerMetrics(lambda: runner.counts, _backlog(queue)).routes()
            group.start_soon(_serve_health, routes, *health)
        await runner.serve(stop)
        group.cancel_scope.cancel()


def _backlog(queue: WorkQueue) -> Callable[[], Awaitable[int]]:
    async def length() -> int:
        return (await queue.stats()).length

    return length


async def _serve_health(routes: list[BaseRoute], host: str, port: int) -> None:
    """The probes (and metrics) on their own small server; cancelled with the worker."""
    if not routes:  # the app serves no probes (Health(path=None)) and no metrics were asked
        return
    import uvicorn
    from starlette.applications import Starlette

    class ProbeServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the worker handles SIGTERM and SIGINT, not this server

    probes = Starlette(routes=routes)
    config = uvicorn.Config(
        probes, host=host, port=port, lifespan="off", access_log=False, log_config=None
    )
    logging.getLogger("voicehooks").info(
        "worker: serving %s on http://%s:%d",
        ", ".join(getattr(route, "path", "?") for route in routes),
        host,
        port,
    )
    await ProbeServer(config).serve()
