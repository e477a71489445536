"""Signed webhooks (Standard Webhooks) that tell a user's server when one of their jobs has finished.

Each user has their own signing secret (GET /webhook-secret), so one user cannot forge another's calls.
Deliveries run as their own Celery task, retried with backoff; each attempt is a job event.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import secrets
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from shared.db import session_scope
from shared.ml.errors import ParameterError
from shared.queue import DELIVER_WEBHOOK_TASK, publish
from shared.tables import Job, User


def user_secret(session: Session, user: User) -> str:
    """The user's signing secret, created on first use."""
    if not user.webhook_secret:
        user.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        session.flush()
    return user.webhook_secret


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), or that resolve to loopback/private/link-local addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(
            "bad_webhook_url", f"webhook_url must be an http(s) URL with a host, got {url!r}."
        )
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ParameterError(
            "bad_webhook_url", f"webhook_url host {parts.hostname!r} does not resolve."
        ) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ParameterError(
                "bad_webhook_url",
                f"webhook_url host {parts.hostname!r} resolves to a non-public address ({address}).",
            )


def payload(job: Job) -> dict[str, Any]:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "type": f"job.{job.status}",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "id": job.id,
            "endpoint": job.endpoint,
            "status": job.status,
            "error": error,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "links": {"self": f"/jobs/{job.id}", "result": f"/jobs/{job.id}/result"},
        },
    }


def signed_request(secret: str, message_id: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers (webhook-id, -timestamp, -signature)."""
    text = json.dumps(body, separators=(",", ":"))
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, text)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return text.encode(), headers


def send(url: str, secret: str, message_id: str, body: dict[str, Any], timeout: float) -> int:
    """POST once; returns the HTTP status (raises httpx errors on network failure)."""
    content, headers = signed_request(secret, message_id, body)
    response = httpx.post(url, content=content, headers=headers, timeout=timeout, follow_redirects=False)
    return response.status_code


def notify(job_id: str) -> None:
    """Queue the webhook of a finished job, if it asked for one (a broker outage only loses the call)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        wanted = job is not None and bool(job.params.get("webhook_url"))
    if wanted:
        # A broker outage loses only this call: the job itself is safe in the database, and pollable.
        with contextlib.suppress(Exception):
            publish(DELIVER_WEBHOOK_TASK, job_id)
