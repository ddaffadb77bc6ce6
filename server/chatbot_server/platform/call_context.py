"""What the server knows about the call being handled, reachable from any code on its path."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

REQUEST_ID_KEY = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class CallContext:
    """One RPC: its id, method and caller, and the metadata to send back with its status."""

    request_id: str
    method: str
    peer: str
    # The client's IP address: the peer's, or the forwarded one behind a trusted proxy.
    client_address: str
    # A trusted proxy (the edge) forwarded the call: the peer is the proxy, not the client.
    via_proxy: bool = False
    # Who is calling: "key:<API key id>", or "ip:<client address>" for an anonymous caller.
    identity: str = "anonymous"
    response_metadata: list[tuple[str, str]] = field(default_factory=list)


_current: ContextVar[CallContext | None] = ContextVar("chatbot_call_context", default=None)


def current_call() -> CallContext | None:
    """The call being handled by this task, if any."""
    return _current.get()


def call_in_progress() -> CallContext:
    """The call being handled; only for code that runs inside an RPC."""
    call = _current.get()
    assert call is not None, "the access-log interceptor sets the call context"
    return call


def set_current_call(call: CallContext) -> None:
    _current.set(call)


def request_id_from(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    """The caller's `x-request-id` when it is a sane token, else a fresh one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _VALID_REQUEST_ID.match(value):
            return value
    return uuid.uuid4().hex
