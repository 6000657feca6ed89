"""Following the registry's champion: the service checks the alias every ``service.poll_s`` seconds and,
when it names another version (a promotion or a rollback), loads that version on a background thread and
swaps it in with one reference assignment.

A scoring pass reads ``current`` once when it starts, so a pass in flight finishes on the model it began
with and no request fails during a swap. A version that cannot be loaded is not retried on every poll
(it would load and fail each time); the old model keeps serving, ``load_error`` says why, and the next
version the alias names is tried. A registry that cannot be reached is the same: serve on, say so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from finsent import utc
from finsent.monitoring.champion import Champion

log = logging.getLogger("finsent.service")


@dataclass(frozen=True)
class Loaded:
    champion: Champion
    loaded_at: str  # ISO UTC

    @property
    def version(self) -> str:
        return self.champion.version


class ChampionFollower:
    def __init__(
        self,
        champion_version: Callable[[], str | None],  # the version the alias names now (None: no champion)
        load_version: Callable[[str], Champion],
        poll_s: float,
        *,
        on_swap: Callable[[Loaded], None] | None = None,
        on_load_failure: Callable[[str, str], None] | None = None,
        on_poll_error: Callable[[str], None] | None = None,
    ) -> None:
        self._champion_version = champion_version
        self._load_version = load_version
        self.poll_s = poll_s
        self._on_swap = on_swap
        self._on_load_failure = on_load_failure
        self._on_poll_error = on_poll_error
        self.current: Loaded | None = None
        self.wanted: str | None = None  # what the alias named at the last successful check
        self.load_error: str | None = None  # why ``wanted`` is not serving, when it is not
        self.poll_error: str | None = None
        self._failed: str | None = None  # the version that failed to load, not retried until the alias moves
        self._stop = threading.Event()
        self._checked = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one check at a time (the poll loop and an explicit check)

    def check(self) -> bool:
        """Read the alias; load and swap in the version it names when that is new. True on a swap."""
        with self._lock:
            try:
                wanted = self._champion_version()
            except Exception as exc:  # noqa: BLE001 - a registry that is down: keep serving what is loaded
                self.poll_error = f"the registry could not be read: {type(exc).__name__}: {str(exc)[:300]}"
                if self._on_poll_error:
                    self._on_poll_error(self.poll_error)
                return False
            finally:
                self._checked.set()
            self.poll_error = None
            self.wanted = wanted
            if wanted is None:
                self.load_error = None if self.current else "the registry has no champion yet: train and promote one (finsent train)"
                return False
            if self.current is not None and self.current.version == wanted:
                self.load_error = self._failed = None
                return False
            if wanted == self._failed:
                return False
            try:
                champion = self._load_version(wanted)
            except Exception as exc:  # noqa: BLE001 - whatever broke the new version, the old one serves on
                self._failed = wanted
                self.load_error = f"version {wanted} could not be loaded: {type(exc).__name__}: {str(exc)[:300]}"
                log.error(
                    "champion %s not swapped in, %s keeps serving: %s",
                    wanted,
                    self.current.version if self.current else "nothing",
                    self.load_error,
                )
                if self._on_load_failure:
                    self._on_load_failure(wanted, self.load_error)
                return False
            previous = self.current
            self.current = Loaded(champion, utc.now().isoformat())  # the swap: one assignment
            self.load_error = self._failed = None
            log.info("champion %s swapped in (was %s)", wanted, previous.version if previous else "none")
            if self._on_swap:
                self._on_swap(self.current)
            return True

    def start(self) -> None:
        """Check now and then every ``poll_s`` seconds, on a daemon thread, until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="finsent-champion", daemon=True)
        self._thread.start()

    def wait_first_check(self, timeout_s: float) -> bool:
        return self._checked.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.poll_s)
