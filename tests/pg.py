"""A throw-away PostgreSQL cluster for the store tests.

Debian's `postgresql` package puts initdb and postgres in
/usr/lib/postgresql/<major>/bin (not on PATH). PostgreSQL refuses to run as
root, so when the tests run as root the cluster belongs to `nobody`, in a
fresh folder under /tmp that `nobody` owns (pytest's tmp folders are 0700
root). It listens on 127.0.0.1 at a free port with password (scram) auth
over TCP, so the tests exercise real credentials; one superuser, `harness`.
It speaks TLS with a certificate from a throw-away CA (tests/tls.py), so
`sslmode=verify-full` is tested for real; plain connections still work.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "harness"
_READY_TIMEOUT_S = 60


def pg_bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class PgCluster:
    def __init__(self, *, durable: bool = False) -> None:
        # Not durable (the default): commits return before their WAL is
        # written, so a server killed within ~200 ms of a commit forgets it.
        # A test that crashes the server and expects its data back needs durable.
        self.durable = durable
        bin_dir = pg_bin_dir()
        assert bin_dir is not None, "no PostgreSQL server installed (apt-get install postgresql)"
        self.bin_dir = bin_dir
        self.password = secrets.token_urlsafe(12)
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.data = self.root / "data"
        self.process: subprocess.Popen | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@{HOST}:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        env = dict(os.environ, HOME=str(self.root), LC_ALL="C")
        subprocess.run([*self._as_user, *argv], check=True, env=env, capture_output=True, timeout=120)

    def start(self) -> "PgCluster":
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            shutil.chown(pwfile, "nobody")
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
        )
        pwfile.unlink()
        from tests.tls import make_server_tls

        tls_dir = self.root / "tls"
        tls_dir.mkdir()
        self.tls = make_server_tls(tls_dir, HOST)
        if self._as_user:
            for path in (tls_dir, self.tls.cert, self.tls.key, self.tls.ca_cert):
                shutil.chown(path, "nobody")
        self._log = open(self.root / "server.log", "wb")  # noqa: SIM115 (a file, not a pipe: a full pipe would block the server)
        return self.launch()

    def launch(self) -> "PgCluster":
        """Start the server on the existing data folder: after start(), or
        again after a crash (it recovers from its WAL like any server)."""
        assert self.process is None or self.process.poll() is not None, "the server is running"
        env = dict(os.environ, HOME=str(self.root), LC_ALL="C")
        # fsync off (every cluster): the OS keeps what a killed server wrote;
        # only losing the machine would lose it, and flushing costs seconds.
        self.process = subprocess.Popen(
            [*self._as_user, str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.root}",
             "-c", "ssl=on", "-c", f"ssl_cert_file={self.tls.cert}", "-c", f"ssl_key_file={self.tls.key}",
             "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", f"synchronous_commit={'on' if self.durable else 'off'}"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.root / "server.log").read_text(errors="replace")
                raise RuntimeError(f"postgres exited {self.process.returncode}: {log[-2000:]}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling interval while the server starts, not a synchronisation

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, then exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
