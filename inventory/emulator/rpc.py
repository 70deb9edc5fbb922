"""google.rpc errors and proto3-JSON request parsing, as Google's front end applies them.

Request bodies are read the way Google's JSON transcoding reads them: a field may be sent by
its JSON name or its proto name (``customerId`` or ``customer_id``); an unknown field is a 400
("Cannot find field"); int64 fields take a decimal string or a JSON integer; enums take their
names. Unknown query parameters are a 400 too ("Cannot bind query parameter").
"""

from __future__ import annotations

import json
import re
from typing import Any

from inventory.emulator.records import JsonObject

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    401: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: (
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per 100 seconds per user' "
        "of service 'androiddeviceprovisioning.googleapis.com'."
    ),
    500: "Internal error encountered.",
    501: "Method not implemented by the zt-inventory emulator.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
}
_INT64_TEXT = re.compile(r"-?[0-9]+\Z")


class RpcError(Exception):
    """An API error answered as ``{"error": {"code", "message", "status"}}``.

    Args:
        code: the HTTP status.
        message: Google-style message; a default per status when empty.
        retry_after: seconds for a Retry-After header.
    """

    def __init__(self, code: int, message: str = "", retry_after: float | None = None) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "Error")
        self.retry_after = retry_after
        super().__init__(f"{code} {self.message}")

    def body(self) -> JsonObject:
        """Return the google.rpc error body."""
        error: JsonObject = {
            "code": self.code,
            "message": self.message,
            "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.code == 429:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "androiddeviceprovisioning.googleapis.com",
                        "quota_metric": "androiddeviceprovisioning.googleapis.com/default",
                    },
                }
            ]
        return {"error": error}


def invalid(message: str) -> RpcError:
    """Return a 400 INVALID_ARGUMENT error."""
    return RpcError(400, message)


def snake(name: str) -> str:
    """Return the proto field name of JSON name ``name`` (``customerId`` -> ``customer_id``)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def parse_json_body(content: bytes) -> JsonObject:
    """Decode a request body; an empty body is an empty message.

    Raises:
        RpcError: 400 when the body is not a JSON object.
    """
    if not content.strip():
        return {}
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(value, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    return value


def fields(message: JsonObject, known: tuple[str, ...], where: str = "") -> JsonObject:
    """Return ``message`` keyed by JSON names, accepting proto names and refusing unknown ones.

    Raises:
        RpcError: 400 for an unknown field or a field sent twice.
    """
    aliases = {snake(name): name for name in known}
    out: JsonObject = {}
    for key, value in message.items():
        name = key if key in known else aliases.get(key)
        if name is None:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field."
                if where
                else f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
        if name in out:
            raise invalid(f'Invalid JSON payload received. Field "{name}" set twice.')
        if value is not None:  # JSON null means "not set" in proto3
            out[name] = value
    return out


def int64(value: Any, field: str) -> int:
    """Parse an int64 sent as a decimal string or JSON integer.

    Raises:
        RpcError: 400 when it is neither, or out of range.
    """
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT64_TEXT.match(value.strip()):
        number = int(value.strip())
    if number is None or not -(2**63) <= number < 2**63:
        raise invalid(f"Invalid value at '{field}' (TYPE_INT64), {json.dumps(value)}")
    return number


def string(value: Any, field: str) -> str:
    """Require a JSON string."""
    if not isinstance(value, str):
        raise invalid(f"Invalid value at '{field}' (TYPE_STRING), {json.dumps(value)}")
    return value


def string_list(value: Any, field: str) -> list[str]:
    """Require a JSON array of strings."""
    if not isinstance(value, list):
        raise invalid(f"Invalid value at '{field}': expected a list, got {json.dumps(value)}")
    return [string(v, f"{field}[{n}]") for n, v in enumerate(value)]


def enum(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    """Require one of the enum names ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise invalid(f"Invalid value at '{field}' (type.googleapis.com/enum), {json.dumps(value)}")
    return value


def limit(value: Any) -> int:
    """Parse the required ``limit`` of the find methods (int64, 1..100 inclusive)."""
    if value is None:
        raise invalid("Request contains an invalid argument: limit is required.")
    number = int64(value, "limit")
    if not 1 <= number <= 100:
        raise invalid(
            f"Request contains an invalid argument: limit must be between 1 and 100, got {number}."
        )
    return number
