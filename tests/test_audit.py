import threading
from datetime import datetime, timedelta, timezone

import pytest
from containers import container_of

from cauldron.pg import audit, timeseries
from cauldron.pg.audit import AuditEvent

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def event(i, user="alice@example.com", **kw):
	return AuditEvent(
		action=kw.get("action", "update"),
		resource_type=kw.get("resource_type", "ToDo"),
		resource_id=kw.get("resource_id", f"TODO-{i}"),
		user_id=user,
		old_values={"status": "Open"},
		new_values={"status": "Closed", "owner": user},
		ip_address="10.0.0.7",
		user_agent="pytest",
		created_at=kw.get("created_at", NOW + timedelta(seconds=i)),
	)


@pytest.fixture
def sealed(timeseries_path, provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	audit.write_events(cur, [event(i) for i in range(20)])
	assert audit.seal(cur) == 20
	conn.commit()
	return conn, cur


def test_sealed_chain_verifies(sealed):
	_conn, cur = sealed
	result = audit.verify(cur)
	assert result.ok, str(result)
	assert (result.rows_checked, result.unsealed) == (20, 0)
	cur.execute("SELECT min(seq), max(seq), count(DISTINCT seq) FROM core.audit_log")
	assert cur.fetchone() == (1, 20, 20)
	assert audit.seal(cur) == 0


@pytest.mark.parametrize(
	"tamper, reason",
	[
		("UPDATE core.audit_log SET action = 'delete' WHERE seq = 7", "row content was changed"),
		('UPDATE core.audit_log SET new_values = \'{"status": "Open"}\' WHERE seq = 7', "personal fields"),
		("UPDATE core.audit_log SET user_id = 'mallory' WHERE seq = 7", "personal fields"),
		("UPDATE core.audit_log SET created_at = created_at + interval '1 s' WHERE seq = 7", "content"),
		("DELETE FROM core.audit_log WHERE seq = 7", "rows 7..7 are missing"),
		("UPDATE core.audit_log SET prev_hash = sha256(prev_hash) WHERE seq = 7", "prev_hash"),
	],
)
def test_tampering_names_the_first_broken_row(sealed, tamper, reason):
	_conn, cur = sealed
	cur.execute(tamper)
	result = audit.verify(cur)
	assert not result.ok
	assert result.broken_seq in (7, 8)
	assert reason in result.reason
	assert "BROKEN at seq" in str(result)


def test_truncating_the_newest_rows_is_detected(sealed):
	_conn, cur = sealed
	cur.execute("DELETE FROM core.audit_log WHERE seq > 18")
	result = audit.verify(cur)
	assert not result.ok and "19..20" in result.reason


def test_erasure_anonymises_and_keeps_the_chain_verifiable(sealed):
	conn, cur = sealed
	about_her = AuditEvent(
		"update",
		"User",
		"alice@example.com",
		"bob@example.com",
		old_values={"full_name": "Alice Liddell", "mobile_no": "+44 1234"},
		new_values={"full_name": "Alice Liddell", "mobile_no": "+44 9876"},
	)
	mentions = AuditEvent(
		"update",
		"ToDo",
		"NOTE-1",
		"carol@example.com",
		new_values={"description": "Ask Alice Liddell (alice@example.com), cc joalice@example.com"},
		ip_address="10.0.0.9",
	)
	audit.write_events(cur, [about_her, mentions])
	conn.commit()
	audit.seal(cur)
	audit.write_events(cur, [event(200)])  # not sealed yet when the erasure runs

	changed = audit.erase_user(cur, "alice@example.com", "anonymous-1f3a", full_name="Alice Liddell")

	assert changed == 23  # her 21 actions, the row about her User document, the row mentioning her
	# the columns that carry what a row says (ids, times and hashes are random hex and digits, which
	# may hold "9876" by chance)
	cur.execute(
		"SELECT count(*) FROM core.audit_log WHERE concat_ws(' ', user_id, resource_id, old_values::text,"
		" new_values::text, ip_address, user_agent) ~ '(^|[^o])alice|Liddell|9876'"
	)
	assert cur.fetchone()[0] == 0
	cur.execute(
		"SELECT old_values, new_values FROM core.audit_log WHERE resource_type = 'User' AND action = 'update'"
	)
	assert cur.fetchone() == (None, None)
	cur.execute("SELECT user_id, ip_address, new_values FROM core.audit_log WHERE resource_id = 'NOTE-1'")
	assert cur.fetchone() == (
		"carol@example.com",
		"10.0.0.9",
		{"description": "Ask REDACTED (anonymous-1f3a), cc joalice@example.com"},
	)
	audit.seal(cur)  # the erasure's own record joins the chain, as `cauldron verify-audit` does first
	result = audit.verify(cur)
	assert result.ok, str(result)
	assert result.rows_checked == 24  # 22 sealed before, the unsealed one, the erasure record


def test_erased_at_alone_does_not_excuse_a_change(sealed):
	_conn, cur = sealed
	cur.execute(
		"UPDATE core.audit_log SET erased_at = now(), pii_salt = NULL, new_values = '{}' WHERE seq = 4"
	)
	result = audit.verify(cur)
	assert (result.ok, result.broken_seq, result.reason) == (False, 4, "personal fields were changed")


def days_to_drop(container) -> int:
	"""Retention in days that makes the partition or chunk `container` the newest one dropped at NOW."""
	return (NOW - container[2]).days


def test_retention_drops_keep_the_rest_verifiable(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	september, october = NOW - timedelta(days=430), NOW - timedelta(days=400)
	audit.write_events(cur, [event(i, created_at=september + timedelta(seconds=i)) for i in range(5)])
	audit.write_events(cur, [event(i, created_at=october + timedelta(seconds=i)) for i in range(5, 10)])
	audit.write_events(cur, [event(i) for i in range(10, 15)])
	timeseries.maintain_partitions(cur, {}, now=NOW)
	audit.seal(cur)
	audit.write_events(cur, [event(i) for i in range(15, 17)])  # unsealed when retention runs
	# monthly partitions natively; TimescaleDB's chunks are 30 days wide, aligned on the epoch
	first_part = container_of(cur, timeseries.AUDIT_LOG, september)
	second_part = container_of(cur, timeseries.AUDIT_LOG, october)
	assert first_part != second_part

	first = timeseries.maintain_partitions(cur, {"core.audit_log": days_to_drop(first_part)}, now=NOW)
	assert first["core.audit_log"]["dropped"] == [first_part[0]]
	assert audit.verify(cur).ok
	second = timeseries.maintain_partitions(cur, {"core.audit_log": days_to_drop(second_part)}, now=NOW)
	assert second["core.audit_log"]["dropped"] == [second_part[0]]

	cur.execute("SELECT min(seq), count(*) FROM core.audit_log")
	assert cur.fetchone() == (11, 7)
	result = audit.verify(cur)
	assert result.ok, str(result)
	cur.execute("DELETE FROM core.audit_log WHERE seq = 11")
	assert not audit.verify(cur).ok


def test_dropping_an_audit_partition_or_chunk_that_a_reader_holds_is_deferred(provisioned, timeseries_path):
	db, conn = provisioned
	cur = conn.cursor()
	old = NOW - timedelta(days=400)
	audit.write_events(cur, [event(i, created_at=old + timedelta(seconds=i)) for i in range(3)])
	timeseries.maintain_partitions(cur, {}, now=NOW)
	audit.seal(cur)
	conn.commit()
	held = container_of(cur, timeseries.AUDIT_LOG, old)
	conn.rollback()
	reader = db.connect()
	reader.cursor().execute("SELECT count(*) FROM core.audit_log")  # a long report, still open

	cur.execute("SET LOCAL statement_timeout = '20s'")  # fail, not hang, if the drop waits for the reader
	started = datetime.now(timezone.utc)
	report = timeseries.maintain_partitions(cur, {"core.audit_log": days_to_drop(held)}, now=NOW)

	assert datetime.now(timezone.utc) - started < timedelta(seconds=6)  # waited LOCK_TIMEOUT, not more
	assert report["core.audit_log"]["deferred"] == [held[0]]
	assert report["core.audit_log"]["dropped"] == []
	cur.execute("SELECT current_setting('lock_timeout')")
	assert cur.fetchone()[0] == "0"  # the job's own timeout does not outlive it
	conn.commit()
	audit.write_events(cur, [event(99)])
	assert audit.seal(cur) == 1  # sealing goes on beside the held chunk
	conn.commit()

	reader.rollback()
	report = timeseries.maintain_partitions(cur, {"core.audit_log": days_to_drop(held)}, now=NOW)
	assert report["core.audit_log"]["dropped"] == [held[0]]
	assert audit.verify(cur).ok


def test_concurrent_writers_commit_in_any_order_and_the_chain_holds(provisioned, timeseries_path):
	db, _conn = provisioned
	barrier = threading.Barrier(4)
	errors = []

	def writer(n):
		conn = db.connect()
		try:
			cur = conn.cursor()
			cur.execute("SET lock_timeout = '5s'")
			for batch in range(5):
				audit.write_events(
					cur, [AuditEvent("insert", "Note", f"N-{n}-{batch}-{i}", f"u{n}") for i in range(10)]
				)
				barrier.wait()
				conn.commit()
		except Exception as e:  # collected and asserted below
			errors.append(e)
			barrier.abort()

	threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
	for t in threads:
		t.start()
	sealer = db.connect()
	while any(t.is_alive() for t in threads):
		audit.seal(sealer.cursor())
		sealer.commit()
	for t in threads:
		t.join()
	assert errors == []
	audit.seal(sealer.cursor())
	sealer.commit()
	result = audit.verify(sealer.cursor())
	assert result.ok and result.rows_checked == 200, str(result)


def test_sealing_counts_each_committed_event_into_metrics_once(provisioned, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	audit.write_events(cur, [event(1, action="insert"), event(2, action="update")])
	cur.execute("SAVEPOINT undo")
	audit.write_events(cur, [event(3, action="insert")])
	cur.execute("ROLLBACK TO SAVEPOINT undo")
	conn.commit()

	assert audit.seal(cur) == 2
	assert audit.seal(cur) == 0
	cur.execute("SELECT metric_name, value, dimensions FROM synapse.metrics ORDER BY time")
	assert cur.fetchall() == [
		("document.insert", 1.0, {"doctype": "ToDo", "action": "insert"}),
		("document.update", 1.0, {"doctype": "ToDo", "action": "update"}),
	]
