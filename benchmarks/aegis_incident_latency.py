"""Time from a security event to its Aegis Security Incident, on a site, while events arrive at
RATE per second through cauldron.api.aegis.ingest over HTTP.

Runs inside a bench, with the bench's Python, from its sites folder, against the bench's web server:
	cd BENCH/sites && ../env/bin/python /path/to/cauldron/benchmarks/aegis_incident_latency.py \\
		--site SITE --url http://127.0.0.1:8000 --token KEY:SECRET [--rate 1000] [--seconds 30] [--interval 1]

A writer thread POSTs RATE/10 events every 100 ms (source `bench-latency`); every 2 s five of them
are failed logins of a new user, which crosses the threshold of a brute-force playbook made for the
run (5 in 10 minutes, its step a note: no approval). The detection loop runs the site's own
detection (cauldron.aegis.response.run_detection, what the per-minute job runs) every INTERVAL
seconds. Reported: from the moment the request that carried the fifth failure returned to the
moment the incident was committed, median and max; whether the detector kept up. With Frappe's
scheduler the job runs once a minute: add up to 60 s to these figures.

The run's playbook is deactivated, its incidents closed and its events deleted afterwards.
"""

import argparse
import json
import statistics
import threading
import time
import uuid
from datetime import datetime, timezone

import frappe
import requests

SOURCE = "bench-latency"


def main():
	parser = argparse.ArgumentParser()
	parser.add_argument("--site", required=True)
	parser.add_argument("--url", required=True)
	parser.add_argument("--token", required=True)
	parser.add_argument("--rate", type=int, default=1000)
	parser.add_argument("--seconds", type=int, default=30)
	parser.add_argument("--interval", type=float, default=1.0)
	args = parser.parse_args()
	frappe.init(site=args.site)
	frappe.connect()
	frappe.set_user("Administrator")
	from cauldron import db
	from cauldron.aegis import response

	run = uuid.uuid4().hex[:8]
	playbook = frappe.get_doc(
		{
			"doctype": "Aegis Security Playbook",
			"playbook_name": f"Latency bench {run}",
			"is_automated": 1,
			"requires_approval": 0,
			"trigger_conditions": json.dumps(
				{
					"match": {"event_type": "login_failed", "source": SOURCE},
					"threshold": {"count": 5, "within": "10m", "group_by": "raw_data.user"},
				}
			),
			"steps": json.dumps([{"action": "add_note", "note": "bench {key}"}]),
		}
	).insert()
	frappe.db.commit()
	response.run_detection()  # the backlog before the run is not the run's

	url = args.url.rstrip("/") + "/api/method/cauldron.api.aegis.ingest"
	headers = {"Authorization": f"token {args.token}", "Content-Type": "application/json", "Host": args.site}
	per_tick = max(5, args.rate // 10)
	crossed: dict[str, float] = {}
	done = threading.Event()
	failures = []

	def writer():
		with requests.Session() as session:
			next_at = time.perf_counter()
			for tick in range(args.seconds * 10):
				now = datetime.now(timezone.utc).isoformat()
				events = [
					{
						"event_type": "http_request",
						"source": SOURCE,
						"time": now,
						"raw_data": {"ip": "198.51.100.1"},
					}
					for _ in range(per_tick)
				]
				victim = None
				if tick % 20 == 5:
					victim = f"victim-{run}-{tick}@example.com"
					for k in range(5):
						events[k] = {
							"event_type": "login_failed",
							"source": SOURCE,
							"time": now,
							"raw_data": {"user": victim, "ip": "203.0.113.50"},
						}
				answer = session.post(url, data=json.dumps({"events": events}), headers=headers, timeout=60)
				if answer.status_code != 200:
					failures.append(answer.text[:300])
				elif victim:
					crossed[victim] = time.perf_counter()
				next_at += 0.1
				time.sleep(max(0.0, next_at - time.perf_counter()))
		done.set()

	thread = threading.Thread(target=writer)
	started = time.perf_counter()
	thread.start()
	opened: dict[str, float] = {}
	while True:
		finished = done.is_set()
		response.run_detection()
		moment = time.perf_counter()
		for key in frappe.get_all(
			"Aegis Security Incident", filters={"detection_rule": playbook.name}, pluck="detection_key"
		):
			opened.setdefault(key, moment)
		frappe.db.rollback()
		if finished:
			break
		time.sleep(args.interval)
	thread.join()
	elapsed = time.perf_counter() - started
	lags = [opened[v] - crossed[v] for v in crossed if v in opened]
	cur = db.cursor()
	cur.execute(
		"SELECT count(*), count(*) FILTER (WHERE processed_data IS NULL) FROM aegis.security_events"
		" WHERE source = %s",
		(SOURCE,),
	)
	total, left = cur.fetchone()
	print(
		f"events posted: {total:,} in {elapsed:.1f} s ({total / elapsed:,.0f} events/s); failures: {len(failures)}"
	)
	print(f"brute forces: {len(crossed)} posted, {len(lags)} became incidents")
	if lags:
		print(
			f"event to incident (detection every {args.interval} s): median {statistics.median(lags) * 1000:.0f} ms,"
			f" max {max(lags) * 1000:.0f} ms"
		)
	print(f"events left unevaluated: {left}")
	if failures:
		print(f"first failure: {failures[0]}")

	frappe.db.set_value("Aegis Security Playbook", playbook.name, "is_active", 0)
	for name in frappe.get_all(
		"Aegis Security Incident", filters={"detection_rule": playbook.name}, pluck="name"
	):
		frappe.db.set_value("Aegis Security Incident", name, "status", "closed")
	cur = db.cursor()
	cur.execute("DELETE FROM aegis.security_events WHERE source = %s", (SOURCE,))
	frappe.db.commit()
	frappe.destroy()


if __name__ == "__main__":
	main()
