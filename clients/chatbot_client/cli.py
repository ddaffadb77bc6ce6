"""`chatbot`: the command-line tool for operators and scripts."""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc

from chatbot_client.client import ChatbotClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="server address (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)
    health = commands.add_parser("health", help="print the server's (or a service's) status")
    health.add_argument("service", nargs="?", default="", help="e.g. chatbot.v1.ChatService")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_health(args.target, args.service, args.timeout))
    except grpc.aio.AioRpcError as error:
        print(f"chatbot: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1


async def _health(target: str, service: str, seconds_per_call: float) -> int:
    async with ChatbotClient(target, timeout=seconds_per_call) as client:
        status = await client.health(service)
    print(status)
    return 0 if status == "SERVING" else 1
