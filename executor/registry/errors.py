"""Registry errors that name the registry, repository, phase and last HTTP status."""
from __future__ import annotations

import json


class RegistryError(Exception):
    def __init__(self, registry: str, repository: str, phase: str, detail: str, status: int | None = None):
        self.registry = registry
        self.repository = repository
        self.phase = phase
        self.status = status
        self.detail = detail
        where = f"{registry}/{repository}" if repository else registry
        status_text = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{phase} {where}: {detail}{status_text}")


class UnauthorizedError(RegistryError):
    pass


class NotFoundError(RegistryError):
    pass


def describe_body(body: bytes | str | None) -> str:
    """The registry's error codes and messages from a distribution-style JSON error body."""
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(body)
        errors = data.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        if parts:
            return "; ".join(parts)
        if "details" in data or "error" in data:
            return str(data.get("details") or data.get("error"))
    except (ValueError, AttributeError):
        pass
    return body.strip()[:200]
