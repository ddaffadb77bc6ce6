"""The edge's Envoy configuration, generated from settings so that nothing drifts by hand.

Browsers reach the API over gRPC-Web or Connect; Envoy's filters turn both into gRPC over
HTTP/2 towards the servers, which it balances, health-checks through `grpc.health.v1`
and ejects when they fail. The console's three files are served from the same origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot_server.config import EdgeSettings

CONSOLE_DIR = Path(__file__).parent / "console"
# Path on the edge → (file in CONSOLE_DIR, content type).
CONSOLE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
# Calls that stay open while the server streams: no route timeout, only a bound.
STREAMING_METHODS = (
    "/chatbot.v1.ChatService/StreamAnswer",
    "/chatbot.v1.DocumentService/WatchDocument",
)
CLUSTER = "chatbot_grpc"
# Stands for the folder the configuration is written to, in the configuration.
CONFIG_DIR = "@CONFIG_DIR@"
BROWSER_CERTIFICATE = "browser_certificate"
UPSTREAM_CERTIFICATE = "upstream_certificate"
BUFFER_LIMIT_BYTES = 4 * 1024 * 1024
_ALLOWED_HEADERS = (
    "authorization",
    "x-api-key",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "connect-protocol-version",
    "connect-timeout-ms",
    "x-request-id",
)
_EXPOSED_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int


def parse_upstreams(raw: str) -> list[Upstream]:
    """ "host:port[,host:port…]"; a host name resolves to every address it has (a headless
    Service's pods, say)."""
    upstreams = []
    for part in (p.strip() for p in raw.split(",")):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"an upstream is host:port, got {part!r}")
        upstreams.append(Upstream(host.strip("[]"), int(port)))
    return upstreams


def local_address(web_address: str) -> tuple[str, int]:
    """Host and port to reach the edge at from this machine: a wildcard listener is
    reached through localhost."""
    host, _, port = web_address.rpartition(":")
    host = host.strip("[]")
    return (host if host not in ("", "0.0.0.0", "::") else "localhost"), int(port)


def edge_origin(settings: EdgeSettings) -> str:
    """The console's own origin, which may always call the API."""
    host, port = local_address(settings.web_address)
    scheme = "https" if settings.tls_cert_file else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class EdgeConfig:
    """Envoy's bootstrap and the files beside it that it reads (its certificates' secrets,
    which Envoy reads again when their files are moved into place). `CONFIG_DIR` in either
    stands for the folder they are written to."""

    bootstrap: dict[str, Any]
    files: dict[str, dict[str, Any]]

    def write(self, directory: Path) -> Path:
        """Writes every file into `directory`; the bootstrap's path."""
        for name, content in self.files.items():
            (directory / name).write_text(_placed(content, directory))
        path = directory / "envoy.json"
        path.write_text(_placed(self.bootstrap, directory))
        return path


def _placed(content: dict[str, Any], directory: Path) -> str:
    return json.dumps(content, indent=2).replace(CONFIG_DIR, str(directory))


def envoy_config(settings: EdgeSettings, upstreams: list[Upstream]) -> EdgeConfig:
    host, _, port = settings.web_address.rpartition(":")
    chain: dict[str, Any] = {"filters": [_http_connection_manager(settings)]}
    secrets = []
    if settings.tls_cert_file and settings.tls_key_file:
        secrets.append(_certificate(BROWSER_CERTIFICATE, settings.tls_cert_file,
                                    settings.tls_key_file))  # fmt: skip
        chain["transport_socket"] = _tls_socket(
            "DownstreamTlsContext",
            common_tls_context={
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificate_sds_secret_configs": [_secret_source(BROWSER_CERTIFICATE)],
            },
        )
    if settings.upstream_cert_file and settings.upstream_key_file:
        secrets.append(_certificate(UPSTREAM_CERTIFICATE, settings.upstream_cert_file,
                                    settings.upstream_key_file))  # fmt: skip
    bootstrap = {
        # Secrets read from files need the node named.
        "node": {"id": "chatbot-edge", "cluster": "chatbot-edge"},
        "static_resources": {
            "listeners": [
                {
                    "name": "web",
                    "address": _socket(host.strip("[]") or "0.0.0.0", int(port)),
                    # The gRPC-Web and Connect filters hold a whole request: room for an upload's
                    # 1 MiB piece and its other fields (Envoy's default of 1 MiB is not).
                    "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
                    "filter_chains": [chain],
                }
            ],
            "clusters": [_cluster(upstreams, settings)],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": _typed(
                        "envoy.extensions.resource_monitors.downstream_connections.v3."
                        "DownstreamConnectionsConfig",
                        max_active_downstream_connections=settings.max_connections,
                    ),
                }
            ]
        },
    }
    # Envoy reads one secret per file.
    files = {_secret_file(secret["name"]): {"resources": [secret]} for secret in secrets}
    return EdgeConfig(bootstrap, files)


def _secret_file(name: str) -> str:
    return f"{name}.json"


def _certificate(name: str, cert_file: str, key_file: str) -> dict[str, Any]:
    """A certificate secret read from files (and again when they are moved into place)."""
    return _typed(
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        name=name,
        tls_certificate={
            "certificate_chain": {"filename": str(Path(cert_file).absolute())},
            "private_key": {"filename": str(Path(key_file).absolute())},
        },
    )


def _secret_source(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "path_config_source": {"path": f"{CONFIG_DIR}/{_secret_file(name)}"},
            "resource_api_version": "V3",
        },
    }


def _tls_socket(context: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": _typed(f"envoy.extensions.transport_sockets.tls.v3.{context}", **fields),
    }


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _typed(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _http_connection_manager(settings: EdgeSettings) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": _typed(
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            stat_prefix="web",
            codec_type="AUTO",
            use_remote_address=True,
            # The servers read the client from x-forwarded-for, believing it only from the edge
            # (TRUSTED_PROXIES). Envoy's own append would name this host instead of a client
            # on loopback, so the route appends the peer's address as it is.
            skip_xff_append=True,
            preserve_external_request_id=True,
            always_set_request_id_in_response=True,
            # Answers send heartbeats well inside this, so only a dead stream is cut.
            stream_idle_timeout="300s",
            route_config=_routes(settings),
            http_filters=[
                _filter("envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.Cors"),
                _filter(
                    "envoy.filters.http.grpc_web",
                    "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb",
                ),
                _filter(
                    "envoy.filters.http.connect_grpc_bridge",
                    "envoy.extensions.filters.http.connect_grpc_bridge.v3.FilterConfig",
                ),
                _filter(
                    "envoy.filters.http.router", "envoy.extensions.filters.http.router.v3.Router"
                ),
            ],
        ),
    }


def _filter(name: str, type_name: str) -> dict[str, Any]:
    return {"name": name, "typed_config": _typed(type_name)}


def _routes(settings: EdgeSettings) -> dict[str, Any]:
    stream_bound = f"{settings.max_stream_seconds:g}s"
    streaming = [
        {
            "match": {"path": method},
            "route": {
                "cluster": CLUSTER,
                "timeout": "0s",
                "max_stream_duration": {
                    "max_stream_duration": stream_bound,
                    "grpc_timeout_header_max": stream_bound,
                },
            },
        }
        for method in STREAMING_METHODS
    ]
    console = [
        {
            "match": {"path": path, "headers": [_method_is("GET")]},
            "direct_response": {"status": 200, "body": {"filename": str(CONSOLE_DIR / name)}},
            "response_headers_to_add": [_header("content-type", content_type)],
        }
        for path, (name, content_type) in CONSOLE_FILES.items()
    ]
    unary_bound = f"{settings.request_timeout_seconds:g}s"
    api = {
        "match": {"prefix": "/"},
        "route": {
            "cluster": CLUSTER,
            "timeout": unary_bound,
            "max_stream_duration": {"grpc_timeout_header_max": unary_bound},
        },
    }
    origins = [edge_origin(settings), *settings.cors_allowed_origins]
    return {
        "name": "web",
        # The console's script is larger than Envoy's 4 KiB default for direct responses.
        "max_direct_response_body_size_bytes": 8 * 1024 * 1024,
        "virtual_hosts": [
            {
                "name": "chatbot",
                "domains": ["*"],
                # A call that never reached a server (it was stopping, or had died) goes to
                # another; one that did is never sent twice.
                "retry_policy": {
                    "retry_on": "connect-failure,refused-stream,reset-before-request",
                    "num_retries": 2,
                    "retry_host_predicate": [
                        {
                            "name": "envoy.retry_host_predicates.previous_hosts",
                            "typed_config": _typed(
                                "envoy.extensions.retry.host.previous_hosts.v3"
                                ".PreviousHostsPredicate"
                            ),
                        }
                    ],
                    "host_selection_retry_max_attempts": 3,
                },
                "routes": [*console, *streaming, api],
                "request_headers_to_add": [
                    _header(
                        "x-forwarded-for",
                        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                        "APPEND_IF_EXISTS_OR_ADD",
                    )
                ],
                # Proxies in front of the edge must not gather a stream into bursts.
                "response_headers_to_add": [_header("x-accel-buffering", "no")],
                "typed_per_filter_config": {
                    "envoy.filters.http.cors": _typed(
                        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
                        allow_origin_string_match=[{"exact": origin} for origin in origins],
                        allow_methods="GET, POST, OPTIONS",
                        allow_headers=", ".join(_ALLOWED_HEADERS),
                        expose_headers=", ".join(_EXPOSED_HEADERS),
                        max_age="600",
                    )
                },
            }
        ],
    }


def _method_is(method: str) -> dict[str, Any]:
    return {"name": ":method", "string_match": {"exact": method}}


def _header(key: str, value: str, action: str = "OVERWRITE_IF_EXISTS_OR_ADD") -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": action}


def _upstream_tls(settings: EdgeSettings) -> dict[str, Any]:
    """TLS towards the servers, trusting EDGE_UPSTREAM_CA_FILE, with the edge's own
    certificate when it has one."""
    assert settings.upstream_ca_file is not None
    common: dict[str, Any] = {
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": {"filename": str(Path(settings.upstream_ca_file).absolute())}
        },
    }
    if settings.upstream_cert_file:
        common["tls_certificate_sds_secret_configs"] = [_secret_source(UPSTREAM_CERTIFICATE)]
    return _tls_socket("UpstreamTlsContext", common_tls_context=common)


def _cluster(upstreams: list[Upstream], settings: EdgeSettings) -> dict[str, Any]:
    cluster = {
        "name": CLUSTER,
        # Host names are resolved again and again, so a headless Service's pods come and go.
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "lb_policy": "ROUND_ROBIN",
        "connect_timeout": "2s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config={"http2_protocol_options": {}},
            )
        },
        "load_assignment": {
            "cluster_name": CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket(upstream.host, upstream.port)}}
                        for upstream in upstreams
                    ]
                }
            ],
        },
        # A server that answers NOT_SERVING (draining, or a dependency down) gets no new calls.
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                # Not Envoy's 60 s while no calls come: a server that failed its first check
                # (still starting) would otherwise wait a minute for its first call.
                "no_traffic_interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
        "circuit_breakers": {
            "thresholds": [
                {
                    # Envoy's default of 1,024 calls at once would refuse streams long before
                    # the servers are busy.
                    "max_requests": 1_000_000,
                    # Retries are of calls that never reached a server; when one dies, all
                    # of its callers come back at once.
                    "retry_budget": {
                        "budget_percent": {"value": 50.0},
                        "min_retry_concurrency": 100,
                    },
                }
            ]
        },
        # A server whose calls keep failing is taken out for a while, between health checks.
        "outlier_detection": {
            "consecutive_gateway_failure": 3,
            "base_ejection_time": "10s",
        },
    }
    if settings.upstream_ca_file:
        cluster["transport_socket"] = _upstream_tls(settings)
    return cluster
