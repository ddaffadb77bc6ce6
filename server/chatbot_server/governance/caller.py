"""What governance found out about the caller of the call being handled: its API key, and
whether the budget sent it offline. Set by the governance interceptors, read on the call's
path; the platform's call context stays free of governance."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from chatbot_server.governance.api_keys import ApiKeyRecord
from chatbot_server.money.ledger_store import RequestFacts
from chatbot_server.platform.call_context import CallContext, current_call
from chatbot_server.platform.errors import ServiceError


@dataclass
class Caller:
    # The caller's API key, when it presented one.
    api_key: ApiKeyRecord | None = None
    # The role of the caller's client certificate, when it called with one and no key.
    certificate_role: str | None = None
    # Set when a budget is spent and BUDGET_EXHAUSTED_ACTION=offline: answer without a model.
    budget_exhausted: ServiceError | None = None

    @property
    def role(self) -> str:
        """admin or client for a key or a client certificate; anonymous without either."""
        if self.api_key is not None:
            return self.api_key.role
        return self.certificate_role or "anonymous"


_current: ContextVar[Caller | None] = ContextVar("chatbot_caller", default=None)


def new_caller() -> Caller:
    """A fresh caller for the call that begins in this task."""
    caller = Caller()
    _current.set(caller)
    return caller


def current_caller() -> Caller:
    """The caller of this task's call; an anonymous one outside governed calls."""
    caller = _current.get()
    if caller is None:
        caller = Caller()
        _current.set(caller)
    return caller


def request_facts() -> RequestFacts | None:
    """The facts of the call being handled, for its ledger rows; None outside a call."""
    call = current_call()
    return request_facts_of(call) if call is not None else None


def request_facts_of(call: CallContext) -> RequestFacts:
    key = current_caller().api_key
    return RequestFacts(call.request_id, call.method, call.identity, key.id if key else None)
