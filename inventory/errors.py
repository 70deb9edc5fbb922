"""The exception tree of zt-inventory.

Every error the library raises for a user to read derives from ``InventoryError``;
the CLI turns each into one ``Error: …`` line and its ``exit_code`` (SPEC: 1 for a failed
run, 2 for bad usage or configuration, 75 when another sync holds the writer lock)::

    InventoryError
    ├── ConfigError            bad configuration or input (exit 2); carries every problem found
    ├── ApiError               the Android Device Provisioning Partner API said no (exit 1)
    │   ├── RetriableApiError  429, 5xx, connection errors, timeouts: retried, then raised
    │   ├── FatalApiError      any other 4xx, or a response that is not the API's JSON
    │   └── AuthError          credentials could not be loaded, refreshed, or were refused
    ├── ListingError           a listing could not be completed (bad paging, totalSize mismatch)
    ├── SchemaMismatchError    the database is not at the schema this code expects (exit 2)
    ├── LockedError            another run holds the database's writer lock (exit 75: try later)
    ├── MassRemovalError       a run would remove more than ``sync.max_removed_fraction`` (exit 1)
    ├── ReadOnlyError          a write was attempted through the read-only ``sql`` command (exit 1)
    └── CancelledError         the caller stopped a run (SIGINT/SIGTERM); nothing was applied
"""

from __future__ import annotations


class InventoryError(Exception):
    """Base of every error zt-inventory reports to a user."""

    exit_code: int = 1


class ConfigError(InventoryError):
    """Configuration or input is invalid; ``errors`` lists every problem, one line each."""

    exit_code = 2

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class ApiError(InventoryError):
    """The API answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.path = path
        self.retry_after = retry_after
        super().__init__(message)


class RetriableApiError(ApiError):
    """A transient failure (429, 500, 502, 503, 504, connection error, timeout)."""


class FatalApiError(ApiError):
    """A failure that retrying cannot fix (other 4xx, malformed responses)."""


class AuthError(ApiError):
    """Credentials are missing, invalid, or were refused by the API (401/403)."""


class ListingError(InventoryError):
    """A listing did not arrive whole: a repeated token, an empty page with a token, a bad count."""


class SchemaMismatchError(InventoryError):
    """The database schema is not at the revision this code expects."""

    exit_code = 2


class LockedError(InventoryError):
    """Another sync holds the database's writer lock: a temporary condition, so the exit code
    is 75 (``EX_TEMPFAIL``), which cron wrappers and systemd can retry, unlike a failure."""

    exit_code = 75


class MassRemovalError(InventoryError):
    """A run would mark more devices removed than ``sync.max_removed_fraction`` allows."""


class ReadOnlyError(InventoryError):
    """The ``sql`` command refused a statement that writes."""


class CancelledError(InventoryError):
    """The caller asked the run to stop; nothing was applied."""


def first_line(text: str) -> str:
    """The first line of ``text``, stripped ("" for blank text): a driver's or library's
    multi-line message reduced to the one line a user reads."""
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""
