"""`bin/dev run` / `bin/dev stop`: Cauldron on its embedded default, and optionally a bench on it.

The bench part needs Frappe (not on PyPI): a version-15 checkout named with --frappe-path, or
Frappe's upstream git when the machine has internet access.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from cauldron.pg import embedded, provision

DATABASE = "cauldron"
SITE = "cauldron.localhost"
UPSTREAM = "https://github.com/frappe/frappe"


def run(state: Path, frappe_path: str | None) -> None:
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

	source = frappe_path or os.environ.get("FRAPPE_PATH") or (UPSTREAM if _reachable(UPSTREAM) else None)
	if source is None:
		print(
			"\nNo bench: Frappe is not on PyPI. Give a Frappe version-15 checkout with"
			" `bin/dev run --frappe-path PATH`, or run with internet access."
		)
		return
	_bench(state / "bench", source, server)


def _reachable(url: str) -> bool:
	try:
		return (
			subprocess.run(["git", "ls-remote", "--heads", url], capture_output=True, timeout=15).returncode
			== 0
		)
	except (OSError, subprocess.TimeoutExpired):
		return False


def _bench(path: Path, frappe_source: str, server: embedded.EmbeddedPostgres) -> None:
	"""A bench with a Postgres site on the embedded server and cauldron installed."""
	venv_bin = Path(sys.executable).parent
	subprocess.run([venv_bin / "pip", "install", "--quiet", "frappe-bench"], check=True)
	bench = str(venv_bin / "bench")
	app = Path(__file__).resolve().parents[2]

	def sh(*args, cwd=path):
		subprocess.run([bench, *args], cwd=cwd, check=True)

	if not path.exists():
		sh(
			"init",
			"--frappe-path",
			frappe_source,
			"--frappe-branch",
			"version-15",
			"--skip-assets",
			path.name,
			cwd=path.parent,
		)
		# Frappe 15 imports pkg_resources, which setuptools 81 and later no longer ship.
		subprocess.run([path / "env" / "bin" / "pip", "install", "--quiet", "setuptools<81"], check=True)
		sh("get-app", str(app))
	if not (path / "sites" / SITE).exists():
		sh(
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
		)
		sh("--site", SITE, "install-app", "cauldron")
	sh("--site", SITE, "cauldron", "doctor")
	print(f"\nBench: {path}  site: {SITE} (Administrator / admin). Start it with: cd {path} && bench start")


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
