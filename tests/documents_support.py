"""Shared set-up for document tests: clean tables and a sample manual."""

from __future__ import annotations

import asyncio

import asyncpg

from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from tests.pdfs import Section, make_pdf

MANUAL_PAGES = [
    [
        Section(
            "Installation",
            [
                "Mount the XPD-42 controller on a flat wall using the four supplied screws. "
                "Keep at least ten centimetres of free space around the housing for cooling.",
                "Connect the DMX input cable to port 1 on the rear panel before powering on.",
            ],
        )
    ],
    [
        Section(
            "Network setup",
            [
                "The controller obtains an IP address by DHCP. To set a static address, open "
                "the web console and enter the address, netmask and gateway under Network.",
            ],
        )
    ],
    [
        Section(
            "Troubleshooting",
            [
                "If the status LED blinks red, the fan has stopped. Clean the air intake and "
                "restart the unit. A steady red light means the firmware must be reinstalled.",
            ],
        )
    ],
]


def manual_pdf() -> bytes:
    return make_pdf(MANUAL_PAGES)


async def truncate_documents(owner_url: str) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute("TRUNCATE documents CASCADE")
    finally:
        await conn.close()


async def wait_until_final(client: ChatbotClient, document_id: str) -> pb.Document:
    return await asyncio.wait_for(client.wait_for_document(document_id), 120)


async def upload_the_manual(client: ChatbotClient) -> pb.Document:
    """Uploads the XPD-42 sample manual and waits until it is READY."""
    uploaded = await client.upload_document(manual_pdf(), title="XPD-42 Manual")
    ready = await wait_until_final(client, uploaded.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY, ready.error
    return ready
