"""What OpenAI's API refuses and how: a request it cannot take is a 400 (OpenAI answers no 422), a file over the size
limit a 413. Both are service errors, so the API maps them like any other, in OpenAI's error shape on /v1."""

from __future__ import annotations

from tuneforge.service.errors import InvalidInput, ServiceError


class InvalidRequest(InvalidInput):
    """Bad input to an OpenAI-compatible operation; details name the OpenAI parameter (e.g. purpose)."""

    status = 400


class FileTooLarge(ServiceError):
    code = "file_too_large"
    status = 413
