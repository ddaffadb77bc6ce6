"""Server reflection that carries the contract's comments, so `grpcurl describe` shows them.

The descriptors compiled into the generated Python code have no source information, so
plain reflection serves the contract without its comments. For the `chatbot.v1` files this
serves the descriptor set generated with `--include_source_info` instead.

Served as `grpc.reflection.v1` and `grpc.reflection.v1alpha`: grpcio-reflection implements
only v1alpha, while `buf curl` and newer tools ask for v1 first. The two protocols are the
same messages under another package name (same fields, same numbers), so one servicer
answers both.
"""

from __future__ import annotations

from importlib import resources

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

DESCRIPTOR_SET = "descriptor_set.binpb"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def documented_files() -> dict[str, bytes]:
    """Serialized `FileDescriptorProto`s of `chatbot.v1`, with comments, by file name."""
    data = resources.files("chatbot.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    return {file.name: file.SerializeToString() for file in descriptor_set.file}


class DocumentedReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer, answering with the documented descriptors where it can."""

    def __init__(self, service_names: tuple[str, ...]) -> None:
        super().__init__(service_names)
        self._documented = documented_files()

    def _file_by_filename(
        self, request: reflection_pb2.ServerReflectionRequest, filename: str
    ) -> reflection_pb2.ServerReflectionResponse:
        return self._with_comments(super()._file_by_filename(request, filename))

    def _file_containing_symbol(
        self, request: reflection_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> reflection_pb2.ServerReflectionResponse:
        return self._with_comments(super()._file_containing_symbol(request, fully_qualified_name))

    def _with_comments(
        self, response: reflection_pb2.ServerReflectionResponse
    ) -> reflection_pb2.ServerReflectionResponse:
        files = response.file_descriptor_response.file_descriptor_proto
        for index, serialized in enumerate(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
            if name in self._documented:
                files[index] = self._documented[name]
        return response


def add_reflection(server: grpc.aio.Server, service_names: tuple[str, ...]) -> None:
    """Reflection v1 and v1alpha listing `service_names`, health and reflection itself."""
    servicer = DocumentedReflectionServicer(
        (
            *service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            REFLECTION_V1,
            reflection.SERVICE_NAME,
        )
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1}),)
    )
