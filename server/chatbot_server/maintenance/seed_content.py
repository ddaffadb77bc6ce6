"""The text of seeded data: product manuals and questions about them, the same on every run.

Made up, but shaped like the real thing: each manual has sections and pages, each chunk a
few sentences with concrete numbers, so that search and answers over seeded data behave as
they do over real manuals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pymupdf

from chatbot_server.documents.chunking import Chunk
from chatbot_server.retrieval.local_model import count_tokens

CHUNKS_PER_PAGE = 5
_PRODUCTS = (
    "Aurora router", "Borealis storage array", "Cirrus thermostat", "Delta label printer",
    "Ember espresso machine", "Fjord backup appliance", "Granite firewall", "Harbor VoIP phone",
    "Iris security camera", "Juniper lighting console", "Kestrel drone", "Lumen projector",
    "Meridian GPS tracker", "Nimbus weather station", "Orion telescope mount",
)  # fmt: skip
_SECTIONS = {
    "Installation": (
        "Mount the {product} at least {n} cm away from heat sources.",
        "Connect the power cable to the socket marked {code} before switching it on.",
        "The first start takes about {n} seconds while the firmware checks itself.",
    ),
    "Network setup": (
        "The {product} obtains an address by DHCP; the fallback address is 192.168.{n}.1.",
        "The web console listens on port {port}; change it under Settings > Network.",
        "Wireless pairing stays open for {n} seconds after the {code} button is pressed.",
    ),
    "Backups": (
        "Configuration backups run every {n} hours and keep the last {m} copies.",
        "A backup can be restored from the recovery menu by holding {code} for {m} seconds.",
        "Export the backup file before a firmware update; it is encrypted with AES-256.",
    ),
    "Troubleshooting": (
        "A blinking amber LED on the {product} means the fan is blocked or failing.",
        "Error {code} means the internal temperature exceeded {n} degrees Celsius.",
        "If the display stays dark, hold the reset button for {m} seconds to restart.",
    ),
    "Security": (
        "Change the default password within {n} days; the {product} reminds you at login.",
        "Remote administration is disabled until two-factor authentication is enabled.",
        "Audit logs of the {product} are kept for {n} days and can be sent to syslog.",
    ),
    "Maintenance": (
        "Clean the air filter every {n} weeks, or every {m} weeks in dusty rooms.",
        "Replace the backup battery, type {code}, when the status page shows it below 20%.",
        "The {product} schedules self-tests on the first Sunday of each month at 03:00.",
    ),
    "Specifications": (
        "The {product} draws {n} W in operation and {m} W in standby.",
        "It operates between 0 and {n} degrees Celsius at up to {m}% relative humidity.",
        "The housing is rated IP{m} and weighs {n}00 grams.",
    ),
}


@dataclass(frozen=True)
class SeedManual:
    title: str
    filename: str
    chunks: list[Chunk]
    pdf: bytes

    @property
    def page_count(self) -> int:
        return max((chunk.page_number for chunk in self.chunks), default=0)


def seed_manual(number: int, chunk_count: int) -> SeedManual:
    """The `number`th manual, of exactly `chunk_count` chunks, with its PDF."""
    generator = random.Random(number)
    product = _PRODUCTS[number % len(_PRODUCTS)]
    edition = number // len(_PRODUCTS) + 1
    sections = list(_SECTIONS)
    chunks = []
    for ordinal in range(chunk_count):
        section = sections[ordinal * len(sections) // chunk_count]
        text = " ".join(
            template.format(
                product=product,
                n=generator.randint(2, 90),
                m=generator.randint(2, 9),
                port=generator.choice((8080, 8443, 9000, 10443)),
                code=f"E{generator.randint(10, 99)}",
            )
            for template in generator.sample(_SECTIONS[section], 2)
        )
        page = ordinal // CHUNKS_PER_PAGE + 1
        chunks.append(Chunk(ordinal, page, section, text, count_tokens(text)))
    title = f"{product} manual, edition {edition}"
    return SeedManual(title, f"seed-{number:03d}.pdf", chunks, _pdf(title, chunks))


def _pdf(title: str, chunks: list[Chunk]) -> bytes:
    """A real PDF with the chunks' text on their pages, so reprocessing works."""
    document = pymupdf.open()
    document.set_metadata({"title": title})
    for page_number in sorted({chunk.page_number for chunk in chunks}):
        page = document.new_page()
        text = "\n\n".join(c.text for c in chunks if c.page_number == page_number)
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 790), text, fontsize=10)
    data: bytes = document.tobytes()
    document.close()
    return data


def seed_question(generator: random.Random, document_title: str, section: str) -> str:
    """A question a user could ask about a section of a seeded manual."""
    product = document_title.split(" manual")[0]
    return generator.choice(
        (
            f"What does the {product} manual say about {section.lower()}?",
            f"How do I handle {section.lower()} on the {product}?",
            f"{section}: what should I know about the {product}?",
        )
    )
