"""Queue entries at rest: sealed with AES-256-GCM when the app has a queue key.

A durable queue entry carries its delivery's whole body: a report's transcript, summary and
analysis, the caller's number, a tool's arguments. Without a key they sit in the queue in
clear text until a worker handles them, and as dead letters until the retention bound. With a
key (``VOICEHOOKS_QUEUE_KEY``, ``VOICEHOOKS_QUEUE_KEY_FILE`` or ``Background(queue_key=...)``)
``DurableSink`` seals each job's bytes before they leave the receiver and ``QueuedJobs`` opens
them in the worker. The queue only stores and moves sealed bytes, whatever its backend: dead
letters keep the sealed entry, and a requeue moves it unopened.

**The envelope**, 38 bytes more than the job::

    0xC1 | version (1) | key id (8) | nonce (12) | ciphertext | tag (16)

``0xC1`` is the one byte msgpack never uses, so a sealed entry is never taken for a plain job
(whose msgpack starts with an array header) and the reverse. The key id is the first 8 bytes
of the key's SHA-256: it picks the key among several and tells an operator which key an entry
needs, and says nothing usable about the key. The nonce is random per entry, which NIST SP
800-38D allows for 2**32 entries per key: rotate long before that. The header is the
associated data, so a changed version or key id fails like a changed ciphertext. The queue's
name is not bound: an entry stays readable after a requeue, a renamed stream or a move to
another backend; give each app its own key if one app's entries must never run in another's
worker.

**Keys** are 32 random bytes in base64url (``voicehooks queue new-key`` prints one). Several,
comma-separated (or one a line in the file), make a rotation: the first seals, every one
opens. Add the new key last everywhere, then move it first, and drop the old one once no entry
sealed with it is left: the dead letters' age bound says when at the latest, and ``voicehooks
queue dead`` shows each letter's key id.

**Plain entries stay readable** with a key set: those written before it was, or by a receiver
not yet given it, so that switching encryption on never strands a backlog or breaks a rolling
deploy (the worker logs a warning at the first one). A key therefore keeps the queue's content
confidential at rest; it does not prove who wrote an entry, which remains the job of Redis's
ACLs and network. An entry that cannot be opened (sealed with a key this process lacks, with
no key set at all, damaged or tampered with) raises ``UnreadableJob``: the worker dead-letters
it at once with that reason, and ``voicehooks queue requeue`` runs it once the key is there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from voicehooks.core import environment
from voicehooks.core.exceptions import ConfigurationError

from .jobs import UnreadableJob

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_BYTES", "Sealer", "new_key", "sealed_with", "sealer_for"]

KEY_BYTES: Final = 32
MAGIC: Final = b"\xc1"
VERSION: Final = 1
_ID_BYTES: Final = 8
_NONCE_BYTES: Final = 12
_HEADER_BYTES: Final = 2 + _ID_BYTES
_MIN_BYTES: Final = _HEADER_BYTES + _NONCE_BYTES + 16
_PREFIX: Final = MAGIC + bytes([VERSION])


def new_key() -> str:
    """A fresh queue key: 32 random bytes in base64url, without padding (43 characters)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).rstrip(b"=").decode()


def key_id(key: bytes) -> bytes:
    """The 8 bytes that name ``key`` in the envelope: the start of its SHA-256."""
    return hashlib.sha256(key).digest()[:_ID_BYTES]


def sealed_with(data: bytes) -> str | None:
    """The key id (hex) a sealed entry needs; ``None`` for a plain one."""
    if data[:1] != MAGIC or len(data) < _HEADER_BYTES:
        return None
    return data[2:_HEADER_BYTES].hex()


class Sealer:
    """Seals job bytes with the first key and opens them with any (see the module docstring).

    With no key ``seal`` returns the bytes unchanged and ``open`` reads plain entries only.
    Its ``repr`` shows the key ids, never a key.

    Args:
        keys: 32-byte keys; the first seals.
        source: Where the keys came from, for error messages.

    Raises:
        ConfigurationError: A key is not 32 bytes, or the ``cryptography`` package is missing.
    """

    __slots__ = ("_aeads", "_invalid_tag", "_sealing", "key_ids")

    def __init__(self, keys: Sequence[bytes] = (), *, source: str = "the queue key") -> None:
        self._aeads: dict[bytes, AESGCM] = {}
        self._sealing: tuple[bytes, AESGCM] | None = None
        self._invalid_tag: type[Exception] = Exception
        if not keys:
            self.key_ids: tuple[str, ...] = ()
            return
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigurationError(
                f"{source} is set, but the cryptography package that seals queue entries is "
                "missing: pip install 'voicehooks[privacy]'"
            ) from None
        self._invalid_tag = InvalidTag
        for index, key in enumerate(keys):
            if len(key) != KEY_BYTES:
                raise _bad_key(source, index, len(keys))
            self._aeads.setdefault(key_id(key), AESGCM(key))
        first = key_id(keys[0])
        self._sealing = (_PREFIX + first, self._aeads[first])
        self.key_ids = tuple(identity.hex() for identity in self._aeads)

    @classmethod
    def parse(cls, text: str, source: str) -> Sealer:
        """A sealer for ``text``: base64url keys, comma-separated, the first sealing.

        Raises:
            ConfigurationError: ``text`` holds no key or a malformed one (the message names
                ``source`` and the key's position, never the key), or ``cryptography`` is
                missing.
        """
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ConfigurationError(
                f"{source} holds no key: `voicehooks queue new-key` prints one"
            )
        keys = []
        for index, part in enumerate(parts):
            try:
                keys.append(base64.b64decode(part + "=" * (-len(part) % 4), b"-_", validate=True))
            except (binascii.Error, ValueError):
                raise _bad_key(source, index, len(parts)) from None
        return cls(keys, source=source)

    @property
    def sealing(self) -> bool:
        """Whether ``seal`` encrypts (a key is set)."""
        return self._sealing is not None

    def seal(self, data: bytes) -> bytes:
        """``data`` in its envelope, sealed with the first key; unchanged without a key."""
        if self._sealing is None:
            return data
        header, aead = self._sealing
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + aead.encrypt(nonce, data, header)

    def open(self, data: bytes) -> bytes:
        """The job bytes of a sealed entry; a plain entry as it is.

        Raises:
            UnreadableJob: The entry is sealed with a key this sealer does not hold, or does
                not authenticate (damaged or tampered with), or is of an unknown version.
        """
        if data[:1] != MAGIC:
            return data
        if len(data) < _MIN_BYTES:
            raise UnreadableJob("a sealed entry cut short")
        if data[1] != VERSION:
            raise UnreadableJob(
                f"sealed in envelope version {data[1]}, which this voicehooks cannot open"
            )
        identity = data[2:_HEADER_BYTES]
        aead = self._aeads.get(identity)
        if aead is None:
            if not self._aeads:
                raise UnreadableJob(
                    f"sealed with queue key {identity.hex()}, and no queue key is set "
                    f"({environment.QUEUE_KEY})"
                )
            raise UnreadableJob(
                f"sealed with queue key {identity.hex()}, which is not among this process's "
                f"keys ({', '.join(self.key_ids)})"
            )
        nonce = data[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES]
        try:
            return aead.decrypt(nonce, data[_HEADER_BYTES + _NONCE_BYTES :], data[:_HEADER_BYTES])
        except self._invalid_tag:
            raise UnreadableJob(
                f"sealed with queue key {identity.hex()}, but it does not authenticate: "
                "damaged or tampered with"
            ) from None

    def __repr__(self) -> str:
        return f"Sealer(key_ids={self.key_ids!r})"


def sealer_for(queue_key: str | None) -> Sealer:
    """The sealer of ``Background(queue_key=...)``, else of ``VOICEHOOKS_QUEUE_KEY`` (or its
    ``_FILE``); one that seals nothing when neither is set.

    Raises:
        ConfigurationError: A key is malformed, or ``cryptography`` is missing.
    """
    if queue_key is not None:
        return Sealer.parse(queue_key, "Background(queue_key=...)")
    text, source = environment.queue_key()
    return Sealer.parse(text, source) if text else Sealer()


def _bad_key(source: str, index: int, count: int) -> ConfigurationError:
    which = f"key {index + 1} of {count} in {source}" if count > 1 else source
    return ConfigurationError(
        f"{which} is not a queue key: 32 random bytes in base64url are expected "
        "(`voicehooks queue new-key` prints one)"
    )
