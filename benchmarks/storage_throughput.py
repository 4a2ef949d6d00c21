"""Storage buckets through HTTP: upload and download throughput for one large file (50 MB by default,
multipart upload, streamed download) and for many small files (1,000 of 4 KB, base64 JSON uploads).

Runs inside a bench, with the bench's Python, from its sites folder, against a running web server:

	cd BENCH/sites && ../env/bin/python /path/to/cauldron/benchmarks/storage_throughput.py \
		--site SITE [--url http://127.0.0.1:8000] [--large-mb 50] [--small 1000] [--repeat 3] [--quick]

The site must take files that large: `bench --site SITE set-config max_file_size 104857600` (the
request limit is the site's max_file_size, 25 MB when unset). It makes a user with an API key and a
private bucket, and removes them and their Files afterwards. Figures are medians over --repeat runs.
"""

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path

import frappe
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as common  # noqa: E402

USER = "cauldron-bench-storage@example.com"
BUCKET = "cauldron-bench-storage"
API = "/api/method/cauldron.api.storage."


def set_up() -> str:
	tear_down()
	user = frappe.get_doc(
		{
			"doctype": "User",
			"email": USER,
			"first_name": "Bench Storage",
			"send_welcome_email": 0,
			"user_type": "System User",
		}
	)
	user.api_key = frappe.generate_hash(length=15)
	secret = frappe.generate_hash(length=15)
	user.api_secret = secret
	user.insert(ignore_permissions=True)
	frappe.get_doc(
		{"doctype": "Cauldron Storage Bucket", "bucket_name": BUCKET, "bucket_owner": USER}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return f"{user.api_key}:{secret}"


def tear_down() -> None:
	for name in frappe.get_all("Cauldron Storage Object", filters={"bucket": BUCKET}, pluck="name"):
		frappe.delete_doc("Cauldron Storage Object", name, ignore_permissions=True, force=True)
	if frappe.db.exists("Cauldron Storage Bucket", BUCKET):
		frappe.delete_doc("Cauldron Storage Bucket", BUCKET, ignore_permissions=True, force=True)
	if frappe.db.exists("User", USER):
		frappe.delete_doc("User", USER, ignore_permissions=True, force=True)
	frappe.db.commit()


def check(response: requests.Response) -> requests.Response:
	if response.status_code != 200:
		raise SystemExit(
			f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}"
		)
	return response


def large(
	session: requests.Session, url: str, megabytes: int, repeat: int
) -> tuple[list[float], list[float]]:
	data = os.urandom(megabytes * 1024 * 1024)
	ups, downs = [], []
	for i in range(repeat):
		path = f"large/{i}.bin"
		start = time.perf_counter()
		check(
			session.post(
				url + API + "upload", data={"bucket": BUCKET, "path": path}, files={"file": ("x.bin", data)}
			)
		)
		ups.append(time.perf_counter() - start)
		start = time.perf_counter()
		got = 0
		with check(
			session.get(url + API + "download", params={"bucket": BUCKET, "path": path}, stream=True)
		) as r:
			for block in r.iter_content(1024 * 1024):
				got += len(block)
		downs.append(time.perf_counter() - start)
		if got != len(data):
			raise SystemExit(f"downloaded {got} bytes of {len(data)}")
	return ups, downs


def small(session: requests.Session, url: str, count: int, size: int) -> tuple[float, float]:
	payload = base64.b64encode(os.urandom(size)).decode()
	start = time.perf_counter()
	for i in range(count):
		check(
			session.post(
				url + API + "upload", json={"bucket": BUCKET, "path": f"small/{i:05}.bin", "content": payload}
			)
		)
	up = time.perf_counter() - start
	start = time.perf_counter()
	for i in range(count):
		check(session.get(url + API + "download", params={"bucket": BUCKET, "path": f"small/{i:05}.bin"}))
	return up, time.perf_counter() - start


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--site", required=True)
	parser.add_argument("--url", default="http://127.0.0.1:8000")
	parser.add_argument("--large-mb", type=int)
	parser.add_argument("--small", type=int)
	parser.add_argument("--small-bytes", type=int, default=4096)
	parser.add_argument("--repeat", type=int)
	args = common.arguments(
		parser, {"large_mb": 50, "small": 1000, "repeat": 3}, {"large_mb": 5, "small": 50, "repeat": 1}
	)
	frappe.init(site=args.site)
	frappe.connect()
	try:
		token = set_up()
		session = requests.Session()
		session.headers["Authorization"] = f"token {token}"
		ups, downs = large(session, args.url, args.large_mb, args.repeat)
		mb = args.large_mb
		print(f"large file: {mb} MB, {args.repeat} runs")
		print(f"  upload   median {statistics.median(ups):.2f} s = {mb / statistics.median(ups):.1f} MB/s")
		print(
			f"  download median {statistics.median(downs):.2f} s = {mb / statistics.median(downs):.1f} MB/s"
		)
		up, down = small(session, args.url, args.small, args.small_bytes)
		print(f"small files: {args.small} of {args.small_bytes} bytes, one client")
		print(f"  upload   {args.small / up:.0f} files/s ({1000 * up / args.small:.1f} ms each)")
		print(f"  download {args.small / down:.0f} files/s ({1000 * down / args.small:.1f} ms each)")
		print(f"  ratio upload/download time per file: {up / down:.2f}")
	finally:
		tear_down()
		frappe.destroy()


if __name__ == "__main__":
	main()
