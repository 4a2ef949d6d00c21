"""Synapse ingest: InfluxDB line protocol and JSON batches parsed whole, then written to
synapse.metrics in one COPY; a bad line writes nothing and is named with its number and why."""

import json
from datetime import datetime, timezone

import pytest

from cauldron.pg import values
from cauldron.synapse import ingest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T = 1_772_366_400  # 2026-03-01 12:00:00 UTC in seconds


def at(seconds: int, micro: int = 0) -> datetime:
	return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micro)


def rows(cur):
	cur.execute("SELECT time, metric_name, value, dimensions FROM synapse.metrics ORDER BY metric_name, time")
	return cur.fetchall()


# Lines from the InfluxDB line protocol reference, and what each becomes.
@pytest.mark.parametrize(
	"line, points",
	[
		(
			f"myMeasurement,tag1=value1,tag2=value2 fieldKey=1.5 {T}000000000",
			[(at(T), "myMeasurement.fieldKey", 1.5, {"tag1": "value1", "tag2": "value2"})],
		),
		(f"cpu usage=42i {T}000000000", [(at(T), "cpu.usage", 42.0, {})]),
		(f"disk free=18446744073709551615u {T}000000000", [(at(T), "disk.free", 18446744073709551615.0, {})]),
		(
			f"up a=t,b=FALSE,c=True,d=f {T}000000000",
			[
				(at(T), "up.a", 1.0, {}),
				(at(T), "up.b", 0.0, {}),
				(at(T), "up.c", 1.0, {}),
				(at(T), "up.d", 0.0, {}),
			],
		),
		(f"m v=-1.5e3,w=.5 {T}000000000", [(at(T), "m.v", -1500.0, {}), (at(T), "m.w", 0.5, {})]),
		# escaping: comma and space in the measurement, space, comma and equals sign in tags
		(
			f"my\\ cpu\\,total,host\\ name=web\\,01,k\\=ey=a\\=b load=1 {T}000000000",
			[(at(T), "my cpu,total.load", 1.0, {"host name": "web,01", "k=ey": "a=b"})],
		),
		# string fields: quotes and backslashes escaped; they become dimensions of the line's points
		(
			f'system,host=a load1=0.5,uptime_format="1 day, \\"3:04\\"" {T}000000000',
			[(at(T), "system.load1", 0.5, {"host": "a", "uptime_format": '1 day, "3:04"'})],
		),
		# no timestamp: the request's time
		("cpu v=1", [(NOW, "cpu.v", 1.0, {})]),
	],
)
def test_line_protocol_from_the_spec(line, points):
	assert ingest.parse_lines(line, now=NOW) == points


@pytest.mark.parametrize(
	"precision, stamp",
	[("ns", f"{T}123456789"), ("us", f"{T}123456"), ("ms", f"{T}123"), ("s", f"{T}")],
)
def test_precision(precision, stamp):
	micro = {"ns": 123456, "us": 123456, "ms": 123000, "s": 0}[precision]
	((time, *_),) = ingest.parse_lines(f"cpu v=1 {stamp}", precision, NOW)
	assert time == at(T, micro)


def test_a_timestamp_beyond_the_calendar_is_refused():
	with pytest.raises(ingest.IngestError, match="line 1: timestamp 300000000000 is out of range"):
		ingest.parse_lines("cpu v=1 300000000000", "s", NOW)


def test_unknown_precision_is_refused():
	with pytest.raises(values.InvalidValue, match="precision must be one of ns, us, ms, s"):
		ingest.parse_lines("cpu v=1", "h")
	with pytest.raises(values.InvalidValue, match="precision must be one of"):
		ingest.parse_lines("cpu v=1", ["s"])


def test_blank_and_comment_lines_are_skipped_and_numbers_count_them():
	text = '# header\n\ncpu v=1\r\n  \ncpu v=\nmem free="x"\n'
	with pytest.raises(ingest.IngestError) as caught:
		ingest.parse_lines(text, now=NOW)
	assert [n for n, _ in caught.value.errors] == [5, 6]
	assert "no numeric or boolean field" in caught.value.errors[1][1]
	assert "2 bad lines, nothing written" in str(caught.value)
	assert len(ingest.parse_lines("# only\ncpu v=1\n\n", now=NOW)) == 1


@pytest.mark.parametrize(
	"line, why",
	[
		("cpu", "measurement"),
		("cpu v=", "value of field"),
		("cpu,host= v=1", "value of tag"),
		("cpu v=nan", "type of field value"),
		("cpu v=1i2", "type of field value"),
		('cpu v="open', "value of field"),
		("cpu v=1 12x", "timestamp"),
		("cpu v=1 99999999999999999999", "timestamp"),
		('cpu,host=a host="b",v=1', "string field 'host' has the name of a tag"),
		("cpu\x00 v=1", "NUL"),
		(f"{'m' * 99} v=1", "longer than 100 characters"),
		("cpu," + ",".join(f"t{i}=x" for i in range(ingest.MAX_DIMENSIONS + 1)) + " v=1", "dimensions"),
		(f"cpu,host={'h' * (ingest.MAX_DIMENSION_VALUE_BYTES + 1)} v=1", "longer than"),
	],
)
def test_a_bad_line_is_named_with_its_number_and_why(line, why):
	with pytest.raises(ingest.IngestError) as caught:
		ingest.parse_lines(f"cpu v=1\n{line}\ncpu v=2", now=NOW)
	((number, message),) = caught.value.errors
	assert number == 2
	assert why in message
	assert f"line 2: {message}" in str(caught.value)


def test_errors_are_collected_and_capped():
	text = "\n".join("cpu v=" if i % 2 else "cpu v=1" for i in range(100))
	with pytest.raises(ingest.IngestError) as caught:
		ingest.parse_lines(text, now=NOW)
	assert caught.value.total == 50
	assert [n for n, _ in caught.value.errors] == list(range(2, 2 * ingest.MAX_ERRORS + 1, 2))
	assert str(caught.value).endswith(f"... and {50 - ingest.MAX_ERRORS} more bad lines")


def test_request_limits(monkeypatch):
	monkeypatch.setattr(ingest, "MAX_LINES", 3)
	with pytest.raises(values.InvalidValue, match="more than 3 lines"):
		ingest.parse_lines("cpu v=1\n" * 3)
	monkeypatch.setattr(ingest, "MAX_POINTS", 4)
	with pytest.raises(ingest.IngestError, match="more than 4 points"):
		ingest.parse_lines("cpu a=1,b=2,c=3\ncpu a=1,b=2")
	monkeypatch.setattr(ingest, "MAX_BODY_BYTES", 10)
	with pytest.raises(values.InvalidValue, match="larger than"):
		ingest.parse_lines(b"cpu value=12345")
	with pytest.raises(ingest.IngestError, match="line 2: is not UTF-8"):
		ingest.parse_lines(b"c v=1\n\xff")


def test_json_batch():
	batch = [
		{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"usage": 12.5, "up": True}, "time": T},
		{"measurement": "mem", "fields": {"free": 3}, "time": "2026-03-01T12:00:00Z"},
		{"measurement": "net", "fields": {"rx": 1}},
	]
	assert ingest.parse(json.dumps(batch), "s", NOW) == [
		(at(T), "cpu.up", 1.0, {"host": "a"}),
		(at(T), "cpu.usage", 12.5, {"host": "a"}),
		(at(T), "mem.free", 3.0, {}),
		(NOW, "net.rx", 1.0, {}),
	]
	assert ingest.parse(batch, "s", NOW) == ingest.parse(json.dumps(batch), "s", NOW)


def test_bad_json_points_are_numbered():
	batch = [
		{"measurement": "cpu", "fields": {"v": 1}},
		{"measurement": "cpu", "fields": {}},
		"cpu v=1",
		{"measurement": "cpu", "fields": {"v": [1]}},
		{"measurement": "cpu", "fields": {"v": 1}, "time": "2026-03-01 12:00"},
		{"measurement": "", "fields": {"v": 1}},
	]
	with pytest.raises(ingest.IngestError) as caught:
		ingest.parse(batch, now=NOW)
	assert [n for n, _ in caught.value.errors] == [2, 3, 4, 5, 6]
	assert "5 bad points" in str(caught.value)
	assert "has no time zone" in caught.value.errors[3][1]
	with pytest.raises(values.InvalidValue, match="not valid JSON"):
		ingest.parse("[{", now=NOW)
	with pytest.raises(values.InvalidValue, match="line protocol text or a JSON list"):
		ingest.parse({"measurement": "cpu"}, now=NOW)


def test_a_batch_is_written_whole(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	text = f"cpu,host=a usage=1.5,idle=90i {T}\nmem,host=a free=3u {T}\n"
	assert ingest.write(cur, text, "s", NOW) == 3
	assert rows(cur) == [
		(at(T), "cpu.idle", 90.0, {"host": "a"}),
		(at(T), "cpu.usage", 1.5, {"host": "a"}),
		(at(T), "mem.free", 3.0, {"host": "a"}),
	]


def test_a_bad_batch_writes_nothing(provisioned):
	_db, conn = provisioned
	cur = conn.cursor()
	good = "\n".join(f"cpu,host=h{i} v={i} {T}" for i in range(50))
	with pytest.raises(ingest.IngestError, match="line 51"):
		ingest.write(cur, good + "\ncpu v=oops", "s", NOW)
	with pytest.raises(ingest.IngestError, match="point 2"):
		ingest.write(cur, [{"measurement": "cpu", "fields": {"v": 1}}, {"fields": {"v": 1}}], "s", NOW)
	assert rows(cur) == []
