"""`bin/dev run` / `bin/dev stop`: Cauldron on its embedded default, and optionally a bench on it.

The bench part needs Frappe (not on PyPI): a version-15 checkout named with --frappe-path, or
Frappe's upstream git when the machine has internet access.

frappe-bench refuses to run as root, so when started by root every bench command runs as a system
user made for it (as `cauldron.pg.embedded` runs the server as its own user), from a frappe-bench
and a bench environment on a Python that user can run.
"""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from cauldron.pg import embedded, provision

DATABASE = "cauldron"
SITE = "cauldron.localhost"
UPSTREAM = "https://github.com/frappe/frappe"
BENCH_USER = "cauldron-bench"
BENCH_HOME = "/var/lib/cauldron-bench"
# Frappe version-15 runs on Python 3.10 to 3.12.
PYTHON_CHECK = "import sys, venv, ensurepip; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))"


class BenchUnavailable(Exception):
	"""The bench cannot be built here; the message says what to do."""


@dataclass
class BenchRunner:
	"""How `bin/dev run` runs frappe-bench: as the invoking user, or, as root, as BENCH_USER."""

	as_root: bool
	tools: Path  # the venv with frappe-bench (and the uv it uses)
	python: str | None = None  # the interpreter of the bench's env; None: frappe-bench's default
	home: str = BENCH_HOME
	# The embedded server's programs, first on PATH: Frappe's backup and restore run the first
	# pg_dump and psql they find, and a pg_dump older than the server fails.
	pg_bin: Path | None = None

	@property
	def path(self) -> str:
		first = [self.pg_bin] if self.pg_bin else []
		return ":".join(str(p) for p in [*first, self.tools / "bin", os.environ.get("PATH", "/usr/bin:/bin")])

	def argv(self, *args) -> list[str]:
		"""The command line that runs `args` with the embedded server's programs and frappe-bench's
		tools first on PATH, as BENCH_USER with its own HOME when root (frappe-bench exits with "You
		should not run this command as root" otherwise)."""
		path = f"PATH={self.path}"
		args = [str(a) for a in args]
		if not self.as_root:
			return ["env", path, *args]
		return ["runuser", "-u", BENCH_USER, "--", "env", f"HOME={self.home}", path, *args]

	def run(self, *args, cwd: Path) -> None:
		result = subprocess.run(self.argv(*args), cwd=cwd)
		if result.returncode != 0:
			who = f" (as user {BENCH_USER})" if self.as_root else ""
			raise BenchUnavailable(
				f"`{' '.join(str(a) for a in args)}`{who} failed with exit {result.returncode}"
			)

	def bench(self, *args, cwd: Path) -> None:
		self.run(self.tools / "bin" / "bench", *args, cwd=cwd)

	def write_wrapper(self, target: Path) -> Path:
		"""A `bench` that runs frappe-bench with this runner's PATH, for the user's own commands
		(`bench --site ... backup` then uses the embedded server's pg_dump)."""
		target.parent.mkdir(parents=True, exist_ok=True)
		target.write_text(f'#!/bin/sh\nPATH="{self.path}" exec "{self.tools / "bin" / "bench"}" "$@"\n')
		target.chmod(0o755)
		return target


def bench_runner(state: Path, as_root: bool | None = None) -> BenchRunner:
	"""Decide how bench commands run, before anything is started. As root this makes BENCH_USER
	and finds a Python 3.10-3.12 it can run, or stops with what to do."""
	as_root = os.geteuid() == 0 if as_root is None else as_root
	if not as_root:
		return BenchRunner(False, Path(sys.executable).parent.parent)
	for tool in ("runuser", "useradd"):
		if shutil.which(tool) is None:
			raise BenchUnavailable(
				f"bin/dev run as root builds the bench as system user {BENCH_USER} and needs `{tool}`,"
				" which is not on PATH: install it (util-linux / passwd), or run bin/dev run as a non-root"
				" user who owns this checkout."
			)
	home = _ensure_bench_user()
	runner = BenchRunner(True, state / "bench-tools", home=home)
	tried = []
	for python in _python_candidates():
		tried.append(python)
		if subprocess.run(runner.argv(python, "-c", PYTHON_CHECK), capture_output=True).returncode == 0:
			runner.python = python
			return runner
	raise BenchUnavailable(
		f"bin/dev run as root builds the bench as system user {BENCH_USER} (frappe-bench refuses root),"
		f" and that user can run no Python 3.10-3.12 with venv and ensurepip (tried: {', '.join(tried)})."
		" Install one outside root's home (Debian: apt-get install python3 python3-venv), or run"
		" bin/dev run as a non-root user who owns this checkout."
	)


def _ensure_bench_user() -> str:
	try:
		home = pwd.getpwnam(BENCH_USER).pw_dir
	except KeyError:
		subprocess.run(
			[
				"useradd",
				"--system",
				"--create-home",
				"--home-dir",
				BENCH_HOME,
				"--shell",
				"/bin/bash",
				BENCH_USER,
			],
			check=True,
		)
		home = BENCH_HOME
	Path(home).mkdir(parents=True, exist_ok=True)
	shutil.chown(home, BENCH_USER, BENCH_USER)
	return home


def _python_candidates() -> list[str]:
	"""Interpreters to offer the bench user: this one first (root's may live in a home it cannot
	reach, as pyenv's does), then the same version and python3 elsewhere on PATH and the usual places."""
	version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
	found = [
		os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
		shutil.which(version),
		shutil.which("python3"),
		f"/usr/bin/{version}",
		"/usr/bin/python3",
		f"/usr/local/bin/{version}",
		"/usr/local/bin/python3",
	]
	seen = []
	for python in found:
		if python and python not in seen and os.path.exists(python):
			seen.append(python)
	return seen


def run(state: Path, frappe_path: str | None) -> None:
	source = frappe_path or os.environ.get("FRAPPE_PATH") or (UPSTREAM if _reachable(UPSTREAM) else None)
	runner = None
	if source is not None:
		try:
			runner = bench_runner(state)
		except BenchUnavailable as e:
			sys.exit(f"bin/dev run: {e}")

	server = embedded.start(state / "pgdata")
	embedded.wait_ready(server)
	admin = psycopg2.connect(server.dsn)
	admin.autocommit = True
	with admin.cursor() as cur:
		cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
		if not cur.fetchone():
			cur.execute(f"CREATE DATABASE {DATABASE}")
	admin.close()
	conn = psycopg2.connect(server.dsn_for(DATABASE))
	with conn, conn.cursor() as cur:
		cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
		result = provision.provision(cur)
	conn.close()
	print(result.summary())
	print(f"\nCauldron database: {server.dsn_for(DATABASE)}")
	print("Stop the server with: bin/dev stop")

	if source is None:
		print(
			"\nNo bench: Frappe is not on PyPI. Give a Frappe version-15 checkout with"
			" `bin/dev run --frappe-path PATH`, or run with internet access."
		)
		return
	runner.pg_bin = embedded.bin_dir()
	try:
		_bench(state, source, server, runner)
	except BenchUnavailable as e:
		sys.exit(f"bin/dev run: the bench was not built: {e}")


def _reachable(url: str) -> bool:
	try:
		return (
			subprocess.run(["git", "ls-remote", "--heads", url], capture_output=True, timeout=15).returncode
			== 0
		)
	except (OSError, subprocess.TimeoutExpired):
		return False


def _owned_dir(path: Path, runner: BenchRunner) -> None:
	"""`path` exists and, as root, belongs to the bench user, who can reach it through its parents."""
	path.mkdir(parents=True, exist_ok=True)
	if runner.as_root:
		shutil.chown(path, BENCH_USER, BENCH_USER)
		for parent in path.parents:
			parent.chmod(parent.stat().st_mode | 0o001)


def _frappe_clone(checkout: str, state: Path, runner: BenchRunner) -> Path:
	"""A clone of a local Frappe checkout with its checked-out commit as branch version-15, which
	`bench init --frappe-branch version-15` clones: the checkout may be on another branch or a
	detached HEAD, hold files only its owner can read, or be named other than `frappe`."""
	clone = state / "frappe-src" / "frappe"
	if not clone.exists():
		# --no-local: objects go through git, not copied file by file with their modes.
		for args in (
			["git", "clone", "--quiet", "--no-local", checkout, str(clone)],
			["git", "-C", str(clone), "checkout", "--quiet", "-B", "version-15"],
		):
			if subprocess.run(args).returncode != 0:
				raise BenchUnavailable(f"`{' '.join(args)}` failed: is {checkout} a git checkout of Frappe?")
		if runner.as_root:
			embedded._make_reachable(clone.parent)
	return clone


def _bench(state: Path, frappe_source: str, server: embedded.EmbeddedPostgres, runner: BenchRunner) -> None:
	"""A bench with a Postgres site on the embedded server and cauldron installed."""
	path = state / "bench"
	app = Path(__file__).resolve().parents[2]
	if runner.as_root:
		_owned_dir(runner.tools, runner)
		if not (runner.tools / "bin" / "python").exists():
			runner.run(runner.python, "-m", "venv", runner.tools, cwd=state)
		# frappe-bench runs git as this user on clones of root's repositories.
		runner.run("git", "config", "--global", "safe.directory", "*", cwd=state)
		for parent in [app, *app.parents]:
			parent.chmod(parent.stat().st_mode | 0o001)
	runner.run(runner.tools / "bin" / "pip", "install", "--quiet", "frappe-bench", cwd=state)
	if Path(frappe_source).exists():
		frappe_source = str(_frappe_clone(frappe_source, state, runner))

	if not (path / "sites" / "apps.txt").exists():
		_owned_dir(path, runner)
		python = ["--python", runner.python] if runner.python else []
		runner.bench(
			"init",
			"--frappe-path",
			frappe_source,
			"--frappe-branch",
			"version-15",
			"--skip-assets",
			"--ignore-exist",
			*python,
			path.name,
			cwd=path.parent,
		)
		# Frappe 15 imports pkg_resources, which setuptools 81 and later no longer ship.
		runner.run(path / "env" / "bin" / "pip", "install", "--quiet", "setuptools<81", cwd=path)
	if not (path / "apps" / "cauldron").exists():
		runner.bench("get-app", "--skip-assets", str(app), cwd=path)
	if not (path / "sites" / SITE).exists():
		runner.bench(
			"new-site",
			SITE,
			"--db-type",
			"postgres",
			"--db-host",
			"127.0.0.1",
			"--db-port",
			str(server.port),
			"--db-root-username",
			"postgres",
			"--db-root-password",
			"postgres",
			"--admin-password",
			"admin",
			cwd=path,
		)
		runner.bench("--site", SITE, "install-app", "cauldron", cwd=path)
	# The site's user may not create pgvector; the embedded server's superuser may (idempotent).
	runner.bench(
		"--site",
		SITE,
		"cauldron",
		"provision",
		"--db-root-username",
		"postgres",
		"--db-root-password",
		"postgres",
		cwd=path,
	)
	runner.bench("--site", SITE, "cauldron", "doctor", cwd=path)
	# bench init recorded its user as the bench's frappe_user: run by root, bench switches to it.
	user = f" (as root too: bench runs as {BENCH_USER})" if runner.as_root else ""
	wrapper = runner.write_wrapper(state / "bin" / "bench")
	print(
		f"\nBench: {path}  site: {SITE} (Administrator / admin)."
		f" Start it with: cd {path} && {wrapper} start{user}"
		f"\n{wrapper} runs bench with the embedded server's pg_dump and psql first on PATH."
	)


def stop(state: Path) -> None:
	data = state / "pgdata"
	if not (data / "postmaster.pid").exists():
		print("embedded PostgreSQL is not running")
		return
	embedded.EmbeddedPostgres(data, 0).stop()
	print("embedded PostgreSQL stopped")


def main() -> None:
	parser = argparse.ArgumentParser(prog="bin/dev")
	parser.add_argument("command", choices=["run", "stop"])
	parser.add_argument("--state", type=Path, required=True)
	parser.add_argument("--frappe-path", help="a Frappe version-15 checkout to build a bench from")
	args = parser.parse_args()
	if args.command == "run":
		run(args.state.resolve(), args.frappe_path)
	else:
		stop(args.state.resolve())


if __name__ == "__main__":
	main()
