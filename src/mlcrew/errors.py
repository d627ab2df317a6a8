"""One error tree for mlcrew. Faces (CLI, REST) turn these into one-line messages or HTTP codes."""

from __future__ import annotations


class MlcrewError(Exception):
    """Root of every error mlcrew raises on purpose; the message says what to do next."""

    exit_code = 1
    # The recorded run (a RunResult) when the error stopped a pipeline run, for --json output.
    run: object | None = None


class SpecError(MlcrewError):
    """The project spec (mlcrew.yaml) is missing or invalid."""

    exit_code = 2


class ProjectError(MlcrewError):
    """The project folder is missing, not initialised, or would be overwritten."""

    exit_code = 2


class DataError(MlcrewError):
    """A source, transform or data file cannot be read or does not fit what the spec says."""


class CheckFailed(MlcrewError):
    """An error-level data check failed; the report names the failing counts and sample rows."""

    def __init__(self, message: str, report: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class StoreError(MlcrewError):
    """The metadata database or the artifact store cannot be used."""


class ExecutorError(MlcrewError):
    """The executor cannot run a stage's units: Ray missing, cluster unreachable, a unit failed."""


class NotFoundError(MlcrewError):
    """A run, stage, artifact, model or alias does not exist."""


class ModelInputError(MlcrewError):
    """Rows sent to a model do not fit its input schema."""

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems


class PromotionRefused(MlcrewError):
    """A promotion's gates refused the candidate; `reasons` says which and why."""

    exit_code = 3

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


class LabelError(MlcrewError):
    """A submitted label is not one the label spec allows (HTTP 422)."""


class TrackingError(MlcrewError):
    """A logged param, metric, tag or artifact is invalid, or contradicts what the run has
    (a param logged again with another value); nothing of the call is kept."""


class LimitExceeded(MlcrewError):
    """A request is larger than the service allows (rows per request, body size)."""


class AuthError(MlcrewError):
    """No credentials, or credentials that are unknown, expired or revoked (HTTP 401)."""


class Forbidden(MlcrewError):
    """The caller is known but its role or token scope lacks the right (HTTP 403)."""


class ConflictError(MlcrewError):
    """The thing to create exists already, or the change would leave the project without an
    admin (HTTP 409)."""


class RateLimited(MlcrewError):
    """Too many failed sign-ins; `retry_after` seconds until the next attempt (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueryError(MlcrewError):
    """A data query that cannot run as written: not one SELECT, not valid SQL, or reaching
    for what the sandbox forbids (HTTP 400)."""


class QueryTimeout(MlcrewError):
    """A data query that ran past its time limit and was stopped (HTTP 408)."""
