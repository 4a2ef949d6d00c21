"""Cost of cauldron's document hooks on a write, against Frappe's own track_changes.

Runs inside a bench, with the bench's Python, from its sites folder:
	cd BENCH/sites && ../env/bin/python /path/to/cauldron/benchmarks/audit_overhead.py --site SITE

One iteration = insert a simple document, change a field, save, commit. Three modes, interleaved
round by round so drift hits them alike:
	plain     the DocType is in Cauldron Settings' exclusion list, track_changes off
	cauldron  audited by cauldron (one audit statement per transaction), track_changes off
	versions  excluded from cauldron, Frappe's track_changes on (a Version document per change)
Prints the median per mode and the ratios to plain.
"""

import argparse
import statistics
import time

import frappe

DOCTYPE = "Cauldron Bench Note"


def ensure_doctype():
	if not frappe.db.exists("DocType", DOCTYPE):
		frappe.get_doc(
			{
				"doctype": "DocType",
				"name": DOCTYPE,
				"module": "Cauldron",
				"custom": 1,
				"autoname": "hash",
				"fields": [
					{"fieldname": "title", "fieldtype": "Data", "label": "Title"},
					{"fieldname": "body", "fieldtype": "Small Text", "label": "Body"},
				],
				"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1}],
			}
		).insert()
		frappe.db.commit()


def set_mode(mode: str, exclusions: str):
	audited = mode == "cauldron"
	settings = frappe.get_single("Cauldron Settings")
	settings.audit_excluded_doctypes = exclusions if audited else f"{exclusions}\n{DOCTYPE}"
	settings.save()
	frappe.db.set_value("DocType", DOCTYPE, "track_changes", int(mode == "versions"))
	frappe.db.commit()
	frappe.clear_cache(doctype=DOCTYPE)


def one_write(i: int) -> float:
	start = time.perf_counter()
	doc = frappe.get_doc({"doctype": DOCTYPE, "title": f"note {i}", "body": "first"}).insert()
	doc.body = "second"
	doc.save()
	frappe.db.commit()
	return time.perf_counter() - start


def main():
	parser = argparse.ArgumentParser()
	parser.add_argument("--site", required=True)
	parser.add_argument("--rounds", type=int, default=10)
	parser.add_argument("--per-round", type=int, default=50)
	args = parser.parse_args()

	frappe.init(site=args.site)
	frappe.connect()
	frappe.set_user("Administrator")
	ensure_doctype()
	exclusions = frappe.get_single("Cauldron Settings").audit_excluded_doctypes or ""
	modes = ("plain", "cauldron", "versions")
	timings = {mode: [] for mode in modes}
	try:
		for mode in modes:  # warm caches and connections once per mode
			set_mode(mode, exclusions)
			for i in range(20):
				one_write(i)
		for _round in range(args.rounds):
			for mode in modes:
				set_mode(mode, exclusions)
				timings[mode] += [one_write(i) for i in range(args.per_round)]
	finally:
		set_mode("cauldron", exclusions)
		frappe.db.delete(DOCTYPE)
		frappe.db.delete("Version", {"ref_doctype": DOCTYPE})
		frappe.db.commit()
		frappe.destroy()

	medians = {mode: statistics.median(values) * 1000 for mode, values in timings.items()}
	n = args.rounds * args.per_round
	print(f"insert + update + commit of a simple DocType, {n} iterations per mode, medians:")
	for mode in modes:
		print(f"  {mode:<9} {medians[mode]:7.3f} ms  ({medians[mode] / medians['plain']:.3f}x plain)")
	overhead = medians["cauldron"] / medians["plain"] - 1
	versions = medians["versions"] / medians["plain"] - 1
	print(f"cauldron adds {overhead:+.1%}; track_changes adds {versions:+.1%}")
	print(f"cauldron / track_changes: {medians['cauldron'] / medians['versions']:.3f}")


if __name__ == "__main__":
	main()
