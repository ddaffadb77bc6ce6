"""The messages sent to the language model: instructions, numbered sources, recent history."""

from __future__ import annotations

from collections.abc import Sequence

from chatbot_server.answers.grounding import NOT_FOUND_MARKER
from chatbot_server.retrieval.hybrid_search import Hit

SYSTEM_PROMPT = (
    "You answer questions about the user's documents. Use only the numbered sources below. "
    "After every statement, cite its source number in square brackets, like [1] or [2][3]. "
    "Answer in the language of the question."
)
# Appended to every system prompt, an experiment's too: the server recognises this reply.
NOT_FOUND_PROTOCOL = (
    f"If the sources do not answer the question, reply with exactly {NOT_FOUND_MARKER} "
    "and nothing else."
)
# Rough and cheap: about four characters per token of prose.
CHARS_PER_TOKEN = 4


def format_source(number: int, hit: Hit) -> str:
    found = hit.candidate
    where = f"{found.document_title}, page {found.page_number}"
    if found.section_title:
        where += f", section “{found.section_title}”"
    return f"[{number}] {where}:\n{found.text}"


def build_messages(
    question: str,
    sources: Sequence[Hit],
    history: Sequence[tuple[str, str]],
    history_token_budget: int,
    system_prompt: str = SYSTEM_PROMPT,
) -> list[dict[str, str]]:
    """System instructions with the sources, then as much recent history as fits the budget
    (newest kept first), then the question."""
    numbered = "\n\n".join(format_source(n, hit) for n, hit in enumerate(sources, start=1))
    instructions = f"{system_prompt}\n{NOT_FOUND_PROTOCOL}"
    messages = [{"role": "system", "content": f"{instructions}\n\nSources:\n\n{numbered}"}]
    kept: list[dict[str, str]] = []
    budget = history_token_budget * CHARS_PER_TOKEN
    for role, content in reversed(history):
        budget -= len(content)
        if budget < 0:
            break
        kept.append({"role": role, "content": content})
    messages.extend(reversed(kept))
    messages.append({"role": "user", "content": question})
    return messages
