import threading

import psycopg2
import pytest

from cauldron.pg import capabilities, ledger, provision, timeseries
from cauldron.pg.vectors import VectorDimensionError


def catalog_snapshot(cur):
	"""Every relation, column, index and constraint in Cauldron's schemas, for idempotency checks."""
	cur.execute(
		"""
		SELECT n.nspname, c.relname, c.relkind,
			(SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
				FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
			(SELECT array_agg(pg_get_constraintdef(k.oid) ORDER BY 1) FROM pg_constraint k WHERE k.conrelid = c.oid),
			pg_get_indexdef(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY(%s)
		ORDER BY 1, 2
		""",
		(list(provision.SCHEMAS),),
	)
	return cur.fetchall()


def test_provision_creates_schemas_tables_and_ledger(db, settings, timeseries_path):
	conn = db.connect()
	cur = conn.cursor()
	result = provision.provision(cur, settings)
	conn.commit()

	assert set(result.created_schemas) == set(provision.SCHEMAS)
	assert [o.status for o in result.outcomes] == ["applied"] * len(result.outcomes)
	for table in (
		"synapse.metrics",
		"synapse.metrics_hourly",
		"aegis.security_events",
		"core.audit_log",
		"lore.document_chunks",
		"lore.entity_embeddings",
	):
		cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
		assert cur.fetchone()[0], table
	cur.execute("SELECT step FROM command.ddl_ledger ORDER BY step")
	assert [r[0] for r in cur.fetchall()] == sorted(o.step for o in result.outcomes)
	cur.execute("SELECT relkind FROM pg_class WHERE oid = 'synapse.metrics'::regclass")
	# native partitioning, or a hypertable (a plain table whose chunks inherit from it)
	assert cur.fetchone()[0] == ("p" if timeseries_path == "native" else "r")
	assert timeseries.uses_timescale(cur) == (timeseries_path == "timescaledb")
	cur.execute(
		"SELECT indexdef FROM pg_indexes WHERE schemaname = 'synapse' AND tablename = 'metrics' ORDER BY 1"
	)
	indexdefs = " ".join(r[0] for r in cur.fetchall())
	assert "USING gin (dimensions)" in indexdefs
	assert ("USING brin" in indexdefs) == (timeseries_path == "native")
	assert '(metric_name, "time" DESC)' in indexdefs
	cur.execute(
		"SELECT indexdef FROM pg_indexes WHERE tablename = 'document_chunks' AND indexdef LIKE '%hnsw%'"
	)
	assert "vector_cosine_ops" in cur.fetchone()[0]


def test_provision_twice_is_a_no_op(provisioned, settings, timeseries_path):
	_db, conn = provisioned
	cur = conn.cursor()
	before = catalog_snapshot(cur)
	cur.execute("SELECT step, checksum, applied_at FROM command.ddl_ledger ORDER BY step")
	ledger_before = cur.fetchall()

	result = provision.provision(cur, settings)
	conn.commit()

	assert {o.status for o in result.outcomes} == {"unchanged"}
	assert result.created_schemas == []
	assert catalog_snapshot(cur) == before
	cur.execute("SELECT step, checksum, applied_at FROM command.ddl_ledger ORDER BY step")
	assert cur.fetchall() == ledger_before


def test_changed_step_is_reported_and_not_reapplied(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	result = provision.provision(cur, provision.Settings(embedding_dimension=768))
	conn.commit()

	changed = {o.step for o in result.by_status("changed")}
	assert changed == {"vectors:lore.document_chunks", "vectors:lore.entity_embeddings"}
	assert "not re-applied" in result.summary()
	cur.execute(
		"SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
		" WHERE attrelid = 'lore.document_chunks'::regclass AND attname = 'embedding'"
	)
	assert cur.fetchone()[0] == "vector(384)"


def test_without_pgvector_install_succeeds_and_names_the_sql(bare_db, settings, timeseries_path):
	conn = bare_db.connect()
	cur = conn.cursor()
	result = provision.provision(cur, settings)
	conn.commit()

	skipped = {o.step: o.detail for o in result.by_status("skipped")}
	assert set(skipped) == {
		"vectors:lore.document_chunks",
		"vectors:lore.entity_embeddings",
		"lore:keyword_bm25",
		"vectors:lore.document_chunks.models",
		"vectors:lore.entity_embeddings.models",
		"vectors:lore.document_chunks.inline_embeddings",
	}
	assert all("vector" in detail for detail in skipped.values())
	assert "CREATE EXTENSION IF NOT EXISTS vector;" in result.summary()
	assert f"in database {bare_db.name!r}" in result.summary()
	# TimescaleDB is trusted: the site's own role created it, and no DBA is asked to
	assert result.capabilities["timescaledb"].installed == (timeseries_path == "timescaledb")
	assert timeseries.uses_timescale(cur) == (timeseries_path == "timescaledb")
	assert "timescaledb;" not in result.summary()
	cur.execute("SELECT to_regclass('lore.document_chunks')")
	assert cur.fetchone()[0] is None
	cur.execute("SELECT count(*) FROM command.ddl_ledger WHERE step LIKE 'vectors:%'")
	assert cur.fetchone()[0] == 0
	conn.rollback()

	# The DBA runs the printed SQL; the next migrate completes the install.
	bare_db.create_extension("vector")
	result = provision.provision(cur, settings)
	conn.commit()
	assert {o.step for o in result.by_status("applied")} == set(skipped)
	cur.execute("SELECT to_regclass('lore.document_chunks') IS NOT NULL")
	assert cur.fetchone()[0]


def test_invalid_dimension_creates_nothing(db):
	conn = db.connect()
	cur = conn.cursor()
	for bad in (0, 4001, "384", 38.4, True):
		with pytest.raises(VectorDimensionError, match="dimension"):
			provision.provision(cur, provision.Settings(embedding_dimension=bad))
		conn.rollback()
	cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)", (list(provision.SCHEMAS),))
	assert cur.fetchone()[0] == 0


def test_large_dimension_uses_halfvec_index(db):
	conn = db.connect()
	cur = conn.cursor()
	provision.provision(cur, provision.Settings(embedding_dimension=3072))
	conn.commit()
	cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_document_chunks_embedding'")
	indexdef = cur.fetchone()[0]
	assert "halfvec(3072)" in indexdef and "halfvec_cosine_ops" in indexdef


def test_drop_schemas_leaves_schemas_it_did_not_create(db, settings, timeseries_path):
	admin = db.admin().cursor()
	admin.execute("CREATE SCHEMA auth; CREATE TABLE auth.identities (id int)")
	conn = db.connect()
	cur = conn.cursor()
	result = provision.provision(cur, settings)
	conn.commit()
	assert "auth" not in result.created_schemas

	dropped = provision.drop_schemas(cur)
	conn.commit()

	assert set(dropped) == set(provision.SCHEMAS) - {"auth"}
	cur.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(provision.SCHEMAS),))
	assert [r[0] for r in cur.fetchall()] == ["auth"]
	admin.execute("SELECT to_regclass('auth.identities') IS NOT NULL")
	assert admin.fetchone()[0]
	if timeseries_path == "timescaledb":  # TimescaleDB forgot the hypertables and their jobs too
		admin.execute("SELECT count(*) FROM timescaledb_information.hypertables")
		assert admin.fetchone()[0] == 0
		admin.execute("SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL")
		assert admin.fetchone()[0] == 0


def test_concurrent_provisioning_applies_each_step_once(db, settings, timeseries_path):
	errors = []

	def run():
		# At REPEATABLE READ a provision that waited for another's lock has a snapshot from before
		# that one committed: it fails whole with a serialization failure and is run again.
		conn = db.connect()
		try:
			for _attempt in range(3):
				try:
					with conn.cursor() as cur:
						provision.provision(cur, settings)
					conn.commit()
					return
				except psycopg2.errors.SerializationFailure:
					conn.rollback()
			errors.append("three serialization failures in a row")
		except Exception as e:  # collected and asserted below
			errors.append(e)

	threads = [threading.Thread(target=run) for _ in range(3)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()

	assert errors == []
	cur = db.connect().cursor()
	cur.execute("SELECT step, count(*) FROM command.ddl_ledger GROUP BY step HAVING count(*) > 1")
	assert cur.fetchall() == []
	cur.execute("SELECT count(*) FROM command.ddl_ledger")
	timescale = timeseries_path == "timescaledb"
	assert cur.fetchone()[0] == len(provision.all_steps(settings, timescale=timescale))
	assert timeseries.uses_timescale(cur) == timescale


def test_capabilities_detect_and_privileged_create(bare_db, timescaledb_missing):
	cur = bare_db.connect().cursor()
	caps = capabilities.detect(cur)
	assert list(caps) == list(capabilities.EXTENSIONS)
	assert not caps["vector"].installed and caps["vector"].available_version
	assert not caps["vector"].can_create  # the site role is no superuser and vector is not trusted
	if timescaledb_missing:
		assert caps["timescaledb"].status in (
			"not available on this server",
			"available, needs shared_preload_libraries",
		)
		assert not caps["timescaledb"].created_by_provision
	else:  # trusted: the database's owner may create it, and provision does
		assert caps["timescaledb"].status == "available, this database role can create it"
		assert caps["timescaledb"].created_by_provision and caps["timescaledb"].dba_sql() == []
	report = capabilities.report(caps, bare_db.name)
	assert ("Created by the next provision" in report) == (not timescaledb_missing)

	assert caps["vector"].status == "available, a superuser must create it"
	admin = bare_db.admin()
	admin.autocommit = False  # as `cauldron provision` runs it: one transaction
	created = capabilities.create_extensions(admin.cursor())
	admin.commit()
	# pg_stat_statements is not preloaded on either server
	assert created == (["vector"] if timescaledb_missing else ["vector", "timescaledb"])
	cur.connection.rollback()  # a new snapshot
	assert capabilities.detect(cur)["vector"].installed


def test_every_step_names_the_objects_it_makes_and_they_cover_cauldrons_schemas(
	provisioned, settings, timeseries_path
):
	_db, conn = provisioned
	cur = conn.cursor()
	steps = provision.all_steps(settings, timescale=timeseries_path == "timescaledb")
	claimed = set()
	for step in steps:
		assert step.objects, step.name
		assert ledger.missing_objects(cur, step.objects) == [], step.name
		claimed |= {name for kind, name in step.objects if kind in ("relation", "index")}
	# Every relation provisioning made (partitions made later by the daily job aside) is some step's.
	cur.execute(
		r"""
		SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'i', 'I')
			AND c.relname !~ '_p\d{8}' AND NOT c.relispartition
			AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
			AND c.oid <> 'command.ddl_ledger'::regclass
		""",
		(list(provision.SCHEMAS),),
	)
	assert {row[0] for row in cur.fetchall()} - claimed == set()
	objects = {
		o for step in steps if step.name.startswith("timeseries:synapse.metrics_hourly") for o in step.objects
	}
	assert ("trigger", "metrics_invalidate_rollup ON synapse.metrics") in objects
	assert ("function", "synapse.log_metrics_invalidation") in objects


@pytest.mark.parametrize(
	"drop, step",
	[
		("DROP TABLE lore.document_chunks", "vectors:lore.document_chunks"),
		("DROP INDEX core.idx_audit_log_user", "timeseries:core.audit_log"),
		("DROP TRIGGER metrics_invalidate_rollup ON synapse.metrics", "timeseries:synapse.metrics_hourly"),
		("DROP FUNCTION synapse.log_metrics_invalidation() CASCADE", "timeseries:synapse.metrics_hourly"),
		("DROP TABLE core.audit_chain_head", "audit:chain"),
	],
)
def test_a_recorded_step_whose_objects_are_gone_is_reported_and_reapplied(provisioned, drop, step):
	_db, conn = provisioned
	cur = conn.cursor()
	before = catalog_snapshot(cur)
	cur.execute(drop)
	conn.commit()

	outcomes = {o.step: o for o in provision.status(cur).outcomes}
	assert outcomes[step].status == "missing"
	assert "recorded as applied, but missing" in outcomes[step].detail
	# a later step with objects on what was dropped (a trigger, an added column) is missing too
	missing = {name for name, o in outcomes.items() if o.status == "missing"}
	assert {o.status for name, o in outcomes.items() if name not in missing} == {"unchanged"}

	result = provision.provision(cur)
	conn.commit()
	assert {o.step for o in result.by_status("applied")} == missing
	assert catalog_snapshot(cur) == before
	assert {o.status for o in provision.status(cur).outcomes} == {"unchanged"}


def test_a_step_whose_extension_is_gone_is_no_longer_claimed(provisioned):
	db, conn = provisioned
	cur = conn.cursor()
	# What a restore as the site's user leaves: the ledger says applied, pgvector and its tables absent.
	with db.admin().cursor() as admin:
		admin.execute("DROP EXTENSION vector CASCADE")
		admin.execute("DROP TABLE lore.document_chunks, lore.entity_embeddings")
	conn.rollback()

	outcomes = {o.step: o for o in provision.status(cur).outcomes}
	for step in ("vectors:lore.document_chunks", "vectors:lore.entity_embeddings"):
		assert outcomes[step].status == "missing"
		assert "needs extension vector before it can be re-applied" in outcomes[step].detail

	result = provision.provision(cur)
	conn.commit()
	skipped = {o.step for o in result.by_status("skipped")}
	assert {"vectors:lore.document_chunks", "vectors:lore.entity_embeddings"} <= skipped
	assert all("needs extension vector" in o.detail for o in result.by_status("skipped"))
	cur.execute("SELECT count(*) FROM command.ddl_ledger WHERE step = ANY(%s)", (list(skipped),))
	assert cur.fetchone()[0] == 0
	conn.rollback()

	db.create_extension("vector")
	result = provision.provision(cur)
	conn.commit()
	assert {o.step for o in result.by_status("applied")} == skipped
	assert {o.status for o in provision.status(cur).outcomes} == {"unchanged"}
	cur.execute("SELECT to_regclass('lore.document_chunks') IS NOT NULL")
	assert cur.fetchone()[0]


def test_a_changed_step_whose_objects_are_all_gone_is_applied_anew(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	cur.execute("DROP TABLE lore.entity_embeddings")
	conn.commit()
	result = provision.provision(cur, provision.Settings(embedding_dimension=768))
	conn.commit()
	outcomes = {o.step: o.status for o in result.outcomes}
	assert outcomes["vectors:lore.entity_embeddings"] == "applied"
	assert outcomes["vectors:lore.document_chunks"] == "changed"  # a live table is never altered
	cur.execute(
		"SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
		" WHERE attrelid = 'lore.entity_embeddings'::regclass AND attname = 'embedding'"
	)
	assert cur.fetchone()[0] == "vector(768)"
