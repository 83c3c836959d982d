"""Files the server re-reads while it runs: token files, JWT keys, TLS certificates.

:class:`WatchedFiles` holds the parsed content of a few files and re-reads
them at most every ``interval`` seconds when asked for the value. A change is
recognised by the files' bytes (a digest), so an in-place edit, a rename
over the file and Kubernetes' atomic Secret update (a symlink swap) all count.
A new version that does not parse is refused: the previous one stays in
force, and the failure is logged once per distinct bad content — with the
parser's own message, which never quotes the files' content.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("sessiond.server.files")

T = TypeVar("T")


class ConfigurationError(ValueError):
    """A configured file is missing, unreadable or invalid (the message quotes no content)."""


def read_files(paths: Sequence[str], what: str) -> list[bytes]:
    """The bytes of each file.

    Raises:
        ConfigurationError: A file cannot be read (the message names the file, not its content).
    """
    contents = []
    for path in paths:
        try:
            contents.append(Path(path).read_bytes())
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigurationError(f"cannot read the {what} {path}: {reason}") from None
    return contents


class WatchedFiles(Generic[T]):
    """The parsed content of some files, re-read when their bytes change.

    Thread-safe: the TLS certificate fetcher calls it from gRPC's threads.

    Args:
        what: What the files are, for messages ("token file", "TLS certificate").
        paths: The files, read together (a certificate and its key, say).
        parse: Builds the value from the files' bytes; raises ``ConfigurationError``.
        interval: Least seconds between two checks; 0 never re-reads.
        clock: Monotonic seconds (tests pass their own).

    Raises:
        ConfigurationError: The files cannot be read or parsed at construction.
    """

    def __init__(
        self,
        what: str,
        paths: Sequence[str],
        parse: Callable[[list[bytes]], T],
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.paths = list(paths)
        self._parse = parse
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        contents = read_files(self.paths, what)
        self._value = parse(contents)
        self._digest = _digest(contents)
        self._refused: bytes | None = None
        self._checked_at = clock()
        #: Increases by one with every accepted new version.
        self.version = 0

    @property
    def value(self) -> T:
        """The current value, without checking the files."""
        return self._value

    def get(self) -> T:
        """The current value, re-read first when the interval has passed."""
        if self._interval > 0 and self._clock() - self._checked_at >= self._interval:
            self.refresh()
        return self._value

    def refresh(self) -> bool:
        """Re-reads the files now; True when a new version was accepted."""
        with self._lock:
            self._checked_at = self._clock()
            try:
                contents = read_files(self.paths, self.what)
            except ConfigurationError as error:
                self._refuse(b"unreadable", str(error))
                return False
            digest = _digest(contents)
            if digest == self._digest or digest == self._refused:
                return False
            try:
                value = self._parse(contents)
            except ConfigurationError as error:
                self._refuse(digest, str(error))
                return False
            except Exception as error:  # a parser bug must not take the server down
                self._refuse(digest, f"{type(error).__name__} while parsing")
                return False
            self._value, self._digest, self._refused = value, digest, None
            self.version += 1
        log.info("reloaded the %s", self.what, extra={"files": self.paths})
        return True

    def _refuse(self, marker: bytes, reason: str) -> None:
        if marker != self._refused:
            self._refused = marker
            log.error(
                "kept the previous %s: the new version is not valid: %s",
                self.what,
                reason,
                extra={"files": self.paths},
            )


def _digest(contents: list[bytes]) -> bytes:
    hasher = hashlib.sha256()
    for body in contents:
        hasher.update(len(body).to_bytes(8, "big"))
        hasher.update(body)
    return hasher.digest()
