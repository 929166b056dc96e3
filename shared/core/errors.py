"""Domain errors. Each carries the gRPC status code it maps to; one interceptor turns them into aborts,
so domain code never imports grpc and handlers need no try/except."""

from __future__ import annotations

from enum import StrEnum


class StatusCode(StrEnum):
    """The subset of gRPC status codes the domain raises (names match grpc.StatusCode)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    ABORTED = "ABORTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class EcomaiError(Exception):
    code: StatusCode = StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class FieldError(EcomaiError):
    """An error about one named request field; the message always starts with the field name."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidArgument(FieldError):
    code = StatusCode.INVALID_ARGUMENT


class NotFound(FieldError):
    code = StatusCode.NOT_FOUND


class PermissionDenied(FieldError):
    """The caller is who it says, but the field names something it may not act on (another customer)."""

    code = StatusCode.PERMISSION_DENIED


class Unauthenticated(EcomaiError):
    """Missing, forged or expired credentials (a client token or a customer identity token)."""

    code = StatusCode.UNAUTHENTICATED


class ResourceExhausted(EcomaiError):
    """The caller is over a limit (its per-client rate); it may retry later."""

    code = StatusCode.RESOURCE_EXHAUSTED


class Conflict(FieldError):
    """A concurrent write won (optimistic version check); the caller may retry."""

    code = StatusCode.ABORTED


class FailedPrecondition(EcomaiError):
    code = StatusCode.FAILED_PRECONDITION


class ModelUnavailable(EcomaiError):
    """A model could not answer (server down, model not loaded, deadline passed). Callers degrade to a fallback."""

    code = StatusCode.UNAVAILABLE

    def __init__(self, model: str, message: str):
        super().__init__(f"model {model} unavailable: {message}")
        self.model = model


class DeadlineExceeded(EcomaiError):
    """The request's deadline passed before its work was done (shared.core.deadlines): the service stops rather
    than finishing for a caller who is gone."""

    code = StatusCode.DEADLINE_EXCEEDED


class DependencyUnavailable(EcomaiError):
    """A dependency the answer cannot do without (the database) is unreachable; the caller may retry the same
    request (RecordEvents keeps its event ids, so a retry stores each event once)."""

    code = StatusCode.UNAVAILABLE


class ImportRejected(EcomaiError):
    """A shop import found bad rows; nothing was written. ``problems`` lists (file, line, column, message)."""

    code = StatusCode.INVALID_ARGUMENT

    def __init__(self, problems: list[tuple[str, int, str, str]]):
        self.problems = problems
        lines = [f"{f}:{line}: column {col}: {msg}" for f, line, col, msg in problems[:50]]
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} bad row(s), nothing imported:\n" + "\n".join(lines) + more)
