"""The audit trail of alias moves, kept in the MLflow registry itself.

Every move of ``champion`` (a gate pass, a manual promotion, a rollback) and every new
candidate is one event: who, when, why, from which version to which. Events are stored as
tags of the registered model (``modops.audit.<time>.<nonce>`` -> JSON), so they live wherever
the registry lives (SQLite here, an MLflow server in production), every worker sees the same
trail, and nothing else has to be backed up. Tags are append-only here: a key is never reused.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient

from modops.registry.errors import ModelNotRegistered

__all__ = ["AUDIT_PREFIX", "AuditEvent", "current_user", "read_audit", "record_event"]

AUDIT_PREFIX = "modops.audit."
ACTIONS = ("register", "promote", "rollback", "gate_failed", "rebaseline")


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the trail.

    Attributes:
        when: ISO 8601 UTC time of the move.
        who: The user (``$MODOPS_USER``, else the login name) or ``gate`` for automatic moves.
        action: One of ``register``, ``promote``, ``rollback``, ``gate_failed``, ``rebaseline``.
        alias: The alias moved (``champion`` or ``challenger``).
        from_version: The version the alias pointed at before, None when it was unset.
        to_version: The version it points at now (for ``gate_failed``: the rejected candidate).
        reason: Why, in the words of whoever moved it (or the gate's summary).
    """

    when: str
    who: str
    action: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def current_user() -> str:
    """Who is acting: ``$MODOPS_USER`` (set it in CI and Airflow), else the login name."""
    user = os.environ.get("MODOPS_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "unknown"


def record_event(
    client: MlflowClient,
    name: str,
    *,
    action: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    who: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event to ``name``'s trail and return it.

    Raises:
        ValueError: On an unknown action or an empty reason (a move nobody can explain is
            exactly what the trail is there to prevent).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {ACTIONS}")
    if not reason.strip():
        raise ValueError("an alias move needs a reason (--reason '...')")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    event = AuditEvent(
        when=when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        who=who or current_user(),
        action=action,
        alias=alias,
        from_version=None if from_version is None else str(from_version),
        to_version=None if to_version is None else str(to_version),
        reason=reason.strip()[:4000],  # MLflow caps tag values at 5000 characters
    )
    # Sortable by time; the nonce keeps two moves in the same microsecond apart.
    key = f"{AUDIT_PREFIX}{when.strftime('%Y%m%dT%H%M%S%f')}.{secrets.token_hex(4)}"
    client.set_registered_model_tag(name, key, json.dumps(event.to_dict(), sort_keys=True))
    return event


def read_audit(client: MlflowClient, name: str) -> list[AuditEvent]:
    """Every event of ``name``'s trail, newest first (errors reading the registry propagate).

    Raises:
        ModelNotRegistered: No model of that name is registered yet.
    """
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotRegistered(
                f"no registered model {name!r} yet: run `make demo` (or `modops run-dag`)"
            ) from None
        raise
    events = [_parse(value) for key, value in sorted(tags.items()) if key.startswith(AUDIT_PREFIX)]
    return sorted((e for e in events if e is not None), key=lambda e: e.when, reverse=True)


def _parse(value: str) -> AuditEvent | None:
    try:
        raw = json.loads(value)
        return AuditEvent(**{k: raw.get(k) for k in AuditEvent.__dataclass_fields__})
    except (ValueError, TypeError):
        return None  # a hand-edited tag must not hide the rest of the trail
