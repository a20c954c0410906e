"""``multipart/form-data`` bodies (RFC 7578) parsed with the standard library's ``email`` package.

civicmap does not depend on ``python-multipart``; bodies are read whole, after the size check
of the route (``IntakeLimits.max_request_bytes``), then split here. Each part gives its form
field ``name``, optional ``filename``, content type and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.policy import HTTP

from civicmap.errors import InputError

__all__ = ["Part", "parse_multipart"]


@dataclass(frozen=True)
class Part:
    """One part of a multipart body."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a ``multipart/form-data`` body (``content_type`` is the request's header, with boundary)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise InputError(f"expected multipart/form-data with a boundary, got Content-Type {content_type!r}")
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = message_from_bytes(head + body, policy=HTTP)
    if not message.is_multipart() or message.defects:
        raise InputError(f"the multipart body cannot be read ({message.defects or 'no parts'}); check the boundary")
    parts = []
    for sub in message.iter_parts():
        payload = sub.get_payload(decode=True)
        parts.append(
            Part(
                name=sub.get_param("name", header="content-disposition"),  # type: ignore[arg-type]
                filename=sub.get_filename(),
                content_type=sub.get_content_type(),
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts
