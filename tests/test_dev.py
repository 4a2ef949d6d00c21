"""`bin/dev run` as root: frappe-bench refuses root ("You should not run this command as root"), so
every bench command runs as a system user of its own, on a Python that user can run."""

import os
import subprocess
from pathlib import Path

import pytest

from cauldron.pg import dev, embedded

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes the bench's system user")


def test_as_root_bench_commands_run_as_the_bench_user():
	runner = dev.BenchRunner(as_root=True, tools=Path("/x/.cauldron/bench-tools"), home="/var/lib/cb")
	argv = runner.argv(Path("/x/.cauldron/bench-tools/bin/bench"), "init", "bench")
	assert argv[:4] == ["runuser", "-u", dev.BENCH_USER, "--"]
	assert "HOME=/var/lib/cb" in argv
	assert "PATH=/x/.cauldron/bench-tools/bin:" in " ".join(argv)  # frappe-bench runs its uv from PATH
	assert argv[-3:] == ["/x/.cauldron/bench-tools/bin/bench", "init", "bench"]


def test_as_another_user_bench_commands_run_as_that_user():
	runner = dev.BenchRunner(as_root=False, tools=Path("/x/.venv"))
	argv = runner.argv("bench", "init", "bench")
	assert "runuser" not in argv
	assert argv[-3:] == ["bench", "init", "bench"]
	assert any(a.startswith("PATH=/x/.venv/bin:") for a in argv)


@root_only
def test_root_gets_a_bench_user_that_is_not_root_and_a_python_it_can_run(tmp_path):
	runner = dev.bench_runner(tmp_path)
	assert runner.as_root
	assert runner.python
	out = subprocess.run(
		runner.argv(
			runner.python,
			"-c",
			"import os, sys; print(os.geteuid(), os.environ['HOME'], sys.version_info[1])",
		),
		capture_output=True,
		text=True,
		check=True,
	).stdout.split()
	assert int(out[0]) != 0
	assert out[1] == runner.home
	assert 10 <= int(out[2]) <= 12
	# its home is its own: frappe-bench, git, uv and yarn keep their settings and caches there
	probe = subprocess.run(
		runner.argv("sh", "-c", 'touch "$HOME/.probe" && echo ok'), capture_output=True, text=True
	)
	assert probe.stdout.strip() == "ok"


@root_only
def test_a_failing_bench_command_is_a_clear_error_not_a_traceback(tmp_path):
	runner = dev.bench_runner(tmp_path)
	with pytest.raises(dev.BenchUnavailable, match=f"as user {dev.BENCH_USER}.*exit 3"):
		runner.run("sh", "-c", "exit 3", cwd=Path("/"))


def _git(*args, cwd):
	return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_a_local_frappe_checkout_is_cloned_with_its_commit_as_version_15(tmp_path):
	# A checkout as bin/dev run may be given one: named other than frappe, on a detached HEAD, with no
	# version-15 branch and a file in .git that only its owner can read.
	checkout = tmp_path / "frappe-15"
	checkout.mkdir()
	_git("init", "--quiet", "--initial-branch", "main", cwd=checkout)
	(checkout / "README.md").write_text("frappe\n")
	_git("add", "README.md", cwd=checkout)
	_git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "15", cwd=checkout)
	commit = _git("rev-parse", "HEAD", cwd=checkout)
	(checkout / "README.md").write_text("later\n")
	_git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "later", cwd=checkout)
	_git("checkout", "--quiet", "--detach", commit, cwd=checkout)
	private = checkout / ".git" / "private"
	private.write_text("owner only")
	private.chmod(0o600)

	state = tmp_path / "state"
	state.mkdir()
	runner = dev.BenchRunner(as_root=os.geteuid() == 0, tools=state / "bench-tools")
	clone = dev._frappe_clone(str(checkout), state, runner)
	assert clone.name == "frappe"
	assert _git("rev-parse", "version-15", cwd=clone) == commit
	assert not (clone / ".git" / "private").exists()
	if runner.as_root:
		dev.bench_runner(state)  # the bench user exists
		subprocess.run(runner.argv("git", "config", "--global", "safe.directory", "*"), check=True)
		seen = subprocess.run(
			runner.argv("git", "-C", str(clone), "rev-parse", "version-15"), capture_output=True, text=True
		)
		assert seen.stdout.strip() == commit, seen.stderr


def test_the_bench_finds_the_embedded_servers_pg_dump_first(tmp_path):
	"""Frappe's backup runs the first pg_dump on PATH; the machine's may be older than the server."""
	tools = tmp_path / "tools"
	(tools / "bin").mkdir(parents=True)
	# stands in for frappe-bench: reports the pg_dump a bench command would run
	fake = tools / "bin" / "bench"
	fake.write_text('#!/bin/sh\ncommand -v pg_dump\npg_dump --version\necho "$@"\n')
	fake.chmod(0o755)
	runner = dev.BenchRunner(as_root=False, tools=tools, pg_bin=embedded.bin_dir())

	out = subprocess.run(runner.argv("sh", "-c", "command -v pg_dump"), capture_output=True, text=True)
	assert out.stdout.strip() == str(embedded.bin_dir() / "pg_dump")

	wrapper = runner.write_wrapper(tmp_path / "bin" / "bench")
	out = subprocess.run([wrapper, "--site", "s", "backup"], capture_output=True, text=True, check=True)
	path, version, args = out.stdout.strip().splitlines()
	assert path == str(embedded.bin_dir() / "pg_dump")
	assert version.startswith("pg_dump (PostgreSQL) 18")
	assert args == "--site s backup"
