"""The provider exception tree. Adapters translate every transport or provider error into
exactly one of these at their edge; each class answers with one error code and HTTP status.

    ProviderError                    base; never raised itself
    ├── ProviderUnavailable          50301 / 503  connect failure, 5xx, 429, broken stream
    │   └── BreakerOpen              50301 / 503  the circuit is open: provider not called
    ├── ProviderTimeout              50401 / 504  no answer, or no next chunk, in time
    ├── ProviderRejectedRequest      40001 / 400  provider says the request is malformed
    └── ProviderMisconfigured        50001 / 500  our credentials/model/URL are wrong (401/403/404)

Only ProviderUnavailable and ProviderTimeout count as failures for the circuit breaker: a
bad request from a client says nothing about the provider's health.
"""

from __future__ import annotations

from common.errors import ErrorCode


class ProviderError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL
    counts_as_failure = False

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status


class ProviderUnavailable(ProviderError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE
    counts_as_failure = True


class BreakerOpen(ProviderUnavailable):
    counts_as_failure = False  # nothing was tried


class ProviderTimeout(ProviderError):
    code = ErrorCode.UPSTREAM_TIMEOUT
    counts_as_failure = True


class ProviderRejectedRequest(ProviderError):
    code = ErrorCode.INVALID_REQUEST


class ProviderMisconfigured(ProviderError):
    code = ErrorCode.INTERNAL


def error_for_status(status: int, provider: str) -> ProviderError:
    """The exception for a non-2xx provider answer. Messages never quote the provider body:
    it may echo our request, and our request holds the creator's prompt."""
    if status in (400, 413, 422):
        return ProviderRejectedRequest(
            f"The model provider rejected the request ({status}).", upstream_status=status
        )
    if status in (401, 403, 404):
        return ProviderMisconfigured(
            f"The {provider} provider is misconfigured.", upstream_status=status
        )
    if status == 408:
        return ProviderTimeout("The model provider timed out.", upstream_status=status)
    return ProviderUnavailable(
        f"The model provider is unavailable ({status}).", upstream_status=status
    )
