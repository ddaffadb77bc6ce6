"""AdminService end to end: experiments and their assignment, answer logs, feedback and API
keys, with the answers made by a fake model on loopback."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask

from chatbot.v1 import admin_service_pb2 as pb
from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2_grpc
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot_client import ChatbotClient
from chatbot_server.answers.fake_openai import FakeOpenAI
from chatbot_server.governance.experiment_store import Variant
from chatbot_server.governance.experiments import assign_variant
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import upload_the_manual
from tests.governance_support import new_key, with_key
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server


def test_assignment_is_stable_and_its_shares_follow_the_weights() -> None:
    # Fixed ids: with 1,000 random ones a 5 % miss is a 3-sigma event that would fail about
    # one run in 300, which says nothing about the hash.
    ids = random.Random(20261202)
    experiment_id = uuid.UUID(int=ids.getrandbits(128), version=4)
    variants = [Variant("control", 50), Variant("bigger", 30), Variant("cheaper", 20)]
    conversations = [uuid.UUID(int=ids.getrandbits(128), version=4) for _ in range(1000)]
    assigned = [assign_variant(experiment_id, c, variants).name for c in conversations]
    assert assigned == [assign_variant(experiment_id, c, variants).name for c in conversations]
    shares = Counter(assigned)
    for variant in variants:
        assert abs(shares[variant.name] / 1000 - variant.weight / 100) <= 0.05, shares


@pytest_asyncio.fixture(scope="module")
async def admin_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_admin")


@pytest_asyncio.fixture(scope="module")
async def admin_server(
    admin_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    fake = FakeOpenAI()
    await fake.start()
    running = await start_server(
        server_settings(
            admin_database.app_url,
            redis_url,
            OPENROUTER_API_KEY="sk-or-test",
            OPENROUTER_BASE_URL=fake.base_url,
            SIMILARITY_THRESHOLD="0",
        )
    )
    async with ChatbotClient(running.address) as client:
        await upload_the_manual(client)
    yield running
    await running.stop()
    await fake.stop()


@pytest_asyncio.fixture(scope="module")
async def admin_secret(admin_database: MigratedDatabase) -> str:
    return (await new_key(admin_database.app_url, "admin-tests", "admin"))[1]


@pytest_asyncio.fixture
async def admin(
    admin_server: RunningServer, admin_secret: str
) -> AsyncIterator[tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel]]:
    async with grpc.aio.insecure_channel(admin_server.address) as channel:
        yield admin_service_pb2_grpc.AdminServiceStub(channel), channel


def _experiment(name: str, active: bool) -> pb.Experiment:
    return pb.Experiment(
        name=name,
        description="does a bigger model help?",
        variants=[
            pb.ExperimentVariant(name="control", weight=1),
            pb.ExperimentVariant(
                name="bigger", weight=1, llm_model="openai/gpt-4o", top_k=3, temperature=0.7
            ),
        ],
        active=active,
    )


async def test_experiment_lifecycle_and_answers_recording_their_variant(
    admin: tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel], admin_secret: str
) -> None:
    stub, channel = admin
    auth = with_key(admin_secret)
    created = (
        await stub.CreateExperiment(
            pb.CreateExperimentRequest(experiment=_experiment("model-size", True)), metadata=auth
        )
    ).experiment
    experiment_id = created.experiment_id
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateExperiment(
            pb.CreateExperimentRequest(experiment=_experiment("another", True)), metadata=auth
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(raised.value).reason == "EXPERIMENT_ALREADY_ACTIVE"

    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    seen: dict[str, str] = {}
    for _ in range(6):
        events = [
            e async for e in chat.StreamAnswer(chat_pb.StreamAnswerRequest(question="Red LED?"))
        ]
        started = events[0].started
        assert started.experiment.experiment_id == experiment_id
        conversation = started.conversation_id
        # A follow-up in the same conversation keeps its arm and the arm's model.
        follow_up = [
            e
            async for e in chat.StreamAnswer(
                chat_pb.StreamAnswerRequest(
                    question="And what does the blue LED mean?", conversation_id=conversation
                )
            )
        ]
        assert follow_up[0].started.experiment.variant == started.experiment.variant
        expected_model = (
            "openai/gpt-4o" if started.experiment.variant == "bigger" else "openai/gpt-4o-mini"
        )
        assert follow_up[0].started.model == expected_model
        seen[conversation] = started.experiment.variant

    logs = await stub.ListAnswerLogs(
        pb.ListAnswerLogsRequest(experiment_id=experiment_id, page_size=100), metadata=auth
    )
    assert len(logs.answer_logs) == 12
    for log in logs.answer_logs:
        assert log.experiment.variant == seen[log.conversation_id]

    results = await stub.GetExperimentResults(
        pb.GetExperimentResultsRequest(experiment_id=experiment_id), metadata=auth
    )
    assert [v.variant for v in results.variants] == ["control", "bigger"]
    assert sum(v.answer_count for v in results.variants) == 12
    for variant in results.variants:
        if variant.answer_count:
            assert variant.p95_latency_ms >= variant.p50_latency_ms > 0

    stopped = await stub.UpdateExperiment(
        pb.UpdateExperimentRequest(
            experiment=pb.Experiment(experiment_id=experiment_id, active=False),
            update_mask=FieldMask(paths=["active"]),
        ),
        metadata=auth,
    )
    assert not stopped.experiment.active
    assert stopped.experiment.name == "model-size"
    events = [e async for e in chat.StreamAnswer(chat_pb.StreamAnswerRequest(question="LED?"))]
    assert not events[0].started.HasField("experiment")
    listed = await stub.ListExperiments(pb.ListExperimentsRequest(), metadata=auth)
    assert experiment_id in [e.experiment_id for e in listed.experiments]


async def test_bad_experiments_are_refused_naming_the_field(
    admin: tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel], admin_secret: str
) -> None:
    stub, _ = admin
    one_variant = pb.Experiment(name="lonely", variants=[pb.ExperimentVariant(name="a", weight=1)])
    zero_weight = _experiment("weightless", False)
    zero_weight.variants[1].weight = 0
    for experiment, field in ((one_variant, "experiment.variants"),
                              (zero_weight, "experiment.variants[1].weight")):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.CreateExperiment(
                pb.CreateExperimentRequest(experiment=experiment), metadata=with_key(admin_secret)
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (raised.value.details() or "")


async def test_feedback_summary_counts_ratings_and_keeps_comments(
    admin: tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel], admin_secret: str
) -> None:
    stub, channel = admin
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    before = await stub.GetFeedbackSummary(
        pb.GetFeedbackSummaryRequest(), metadata=with_key(admin_secret)
    )
    for rating in (chat_pb.FEEDBACK_RATING_POSITIVE, chat_pb.FEEDBACK_RATING_NEGATIVE):
        events = [e async for e in chat.StreamAnswer(chat_pb.StreamAnswerRequest(question="LED?"))]
        await chat.SubmitFeedback(
            chat_pb.SubmitFeedbackRequest(
                message_id=events[0].started.assistant_message_id,
                rating=rating,
                comment="wrong page" if rating == chat_pb.FEEDBACK_RATING_NEGATIVE else "",
            )
        )
    after = await stub.GetFeedbackSummary(
        pb.GetFeedbackSummaryRequest(), metadata=with_key(admin_secret)
    )
    assert after.total.positive_count == before.total.positive_count + 1
    assert after.total.negative_count == before.total.negative_count + 1
    assert after.total.answer_count == before.total.answer_count + 2
    assert after.recent_comments[0].comment == "wrong page"


async def test_answer_logs_page_through_and_filter_errors(
    admin: tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel], admin_secret: str
) -> None:
    stub, channel = admin
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    for _ in range(3):
        [e async for e in chat.StreamAnswer(chat_pb.StreamAnswerRequest(question="Port?"))]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListAnswerLogs(
            pb.ListAnswerLogsRequest(page_size=2, page_token=token),
            metadata=with_key(admin_secret),
        )
        seen += [log.answer_log_id for log in page.answer_logs]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 3
    errors = await stub.ListAnswerLogs(
        pb.ListAnswerLogsRequest(errors_only=True), metadata=with_key(admin_secret)
    )
    assert all(log.error_type for log in errors.answer_logs)


async def test_api_keys_are_created_listed_and_revoked_through_admin_service(
    admin: tuple[admin_service_pb2_grpc.AdminServiceStub, grpc.aio.Channel], admin_secret: str
) -> None:
    stub, channel = admin
    auth = with_key(admin_secret)
    created = await stub.CreateApiKey(
        pb.CreateApiKeyRequest(
            name="search-service",
            role=pb.API_KEY_ROLE_CLIENT,
            daily_budget_usd=3.0,
            rate_limit="600/minute",
        ),
        metadata=auth,
    )
    assert created.secret.startswith(created.api_key.prefix)
    assert created.api_key.daily_budget_usd == 3.0
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    await chat.ListConversations(
        chat_pb.ListConversationsRequest(), metadata=with_key(created.secret)
    )
    listed = await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=auth)
    found = next(k for k in listed.api_keys if k.api_key_id == created.api_key.api_key_id)
    assert found.HasField("last_use_time") and found.rate_limit == "600/minute"

    revoked = await stub.RevokeApiKey(
        pb.RevokeApiKeyRequest(api_key_id=created.api_key.api_key_id), metadata=auth
    )
    assert revoked.api_key.revoked
    # Revoked through this replica: refused at once.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await chat.ListConversations(
            chat_pb.ListConversationsRequest(), metadata=with_key(created.secret)
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    active_only = await stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=auth)
    assert created.api_key.api_key_id not in [k.api_key_id for k in active_only.api_keys]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateApiKey(
            pb.CreateApiKeyRequest(name="x", role=pb.API_KEY_ROLE_CLIENT, rate_limit="lots"),
            metadata=auth,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
