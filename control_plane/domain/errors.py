"""Domain errors. The API layer maps each class to one gRPC status code.

Messages are written for the person calling the API and never include a
secret value: callers build them from ids and field paths only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base class; `reason` is the stable UPPER_SNAKE ErrorInfo reason."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Iterable[FieldViolation] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = tuple(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"{field}: {description}", [FieldViolation(field, description)])


class NotFound(DomainError):
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """`subjects` are the ids of whatever blocks the operation."""

    reason = "FAILED_PRECONDITION"

    def __init__(
        self, message: str, subjects: Iterable[str] = (), *, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.subjects = tuple(subjects)


class Aborted(DomainError):
    reason = "ETAG_MISMATCH"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """A quota would be exceeded; `quota` is its stable name, `subject` what hit it."""

    reason = "QUOTA_EXCEEDED"

    def __init__(self, message: str, *, quota: str = "", limit: int = 0, subject: str = "") -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.subject = subject


class Unavailable(DomainError):
    """The database cannot be reached: nothing was written, the call may be retried."""

    reason = "DATABASE_UNAVAILABLE"


class Violations:
    """Collects every problem of one request so the caller sees them all at once."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def __bool__(self) -> bool:
        return bool(self._items)

    def raise_if_any(self, message: str = "invalid request", *, reason: str | None = None) -> None:
        if self._items:
            first = self._items[0]
            summary = f"{message}: {first.field}: {first.description}"
            if len(self._items) > 1:
                summary += f" (and {len(self._items) - 1} more)"
            raise InvalidArgument(summary, self._items, reason=reason)
