"""Storage buckets that behave like Supabase Storage (/api/method/cauldron.api.storage.<name>).

- `upload(bucket, path, content, upsert, metadata)`: content as base64 text in JSON, or a multipart
  file field `file` (what large files should use: a JSON call is at most 16 MiB); answers the object.
- `download(bucket, path)`: the content, streamed from its File (Content-Type read from the content
  when it was uploaded); `last_accessed_at` is updated to the minute (a second download within the
  minute writes nothing), never waiting on another writer.
- `list_objects(bucket, prefix, limit, offset)`: the objects and "folders" directly under a prefix, paginated.
- `move(bucket, from_path, to_path)`, `copy(bucket, from_path, to_path)`, `remove(bucket, paths)`.
- `create_signed_url(bucket, path, expires_in)`: a URL to `download_signed` that needs no session,
  signed with an HMAC keyed by the site's secret (cauldron.storage.objects); altered or expired URLs
  are refused (403).

Who may do what: a public bucket's objects are downloaded by anyone, Guest included; everything else
needs access to the bucket: its owner and System Managers everything, the roles on the bucket read
(list, download, sign URLs) or write (also upload, move, copy, remove). To everyone else a bucket
they may not read does not exist (404, the same answer as for a bucket that does not), and one they
may read but not write answers 403. Bad paths, disguised or oversized files and bad parameters are
4xx with a readable message; an upload that fails leaves no File behind (the transaction's rollback
removes the File row and Frappe removes its file from disk).
"""

import base64
import binascii
import json
import mimetypes
import uuid
from urllib.parse import urlencode

import frappe
from frappe import _
from frappe.utils import get_url, now_datetime
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from cauldron import params
from cauldron.storage import objects

BUCKET = "Cauldron Storage Bucket"
OBJECT = "Cauldron Storage Object"
MAX_LIST = 1000


class StorageRefused(frappe.ValidationError):
	http_status_code = 400


def _refuse(error: objects.StorageError):
	exc = {
		403: frappe.PermissionError,
		404: frappe.DoesNotExistError,
		409: frappe.DuplicateEntryError,
	}.get(error.status)
	if exc is None:
		exc = type(f"Storage{error.status}", (StorageRefused,), {"http_status_code": error.status})
	frappe.throw(str(error), exc, title=_("Storage"))


def access(bucket: dict, user: str | None = None) -> str | None:
	"""'write', 'read' or None: what `user` may do in a bucket (a dict with name, bucket_owner)."""
	user = user or frappe.session.user
	if user == "Guest":
		return None
	if user == "Administrator" or user == bucket.get("bucket_owner"):
		return "write"
	roles = set(frappe.get_roles(user))
	if "System Manager" in roles:
		return "write"
	granted = frappe.get_all(
		"Cauldron Storage Bucket Role",
		filters={"parent": bucket["name"], "parenttype": BUCKET, "role": ("in", list(roles))},
		pluck="access",
	)
	if "write" in granted:
		return "write"
	return "read" if granted else None


def _bucket(name, need: str, public_read: bool = False) -> dict:
	"""The bucket when the user may `need` ('read' or 'write') in it; 404 alike for a bucket that does
	not exist and one the user may not read, 403 for one they may read but not write."""
	with params.refused():
		if not isinstance(name, str) or not name:
			raise objects.StorageError("bucket must be the name of a bucket")
	bucket = frappe.db.get_value(
		BUCKET,
		name,
		["name", "bucket_owner", "public", "allowed_mime_types", "file_size_limit"],
		as_dict=True,
	)
	allowed = access(bucket) if bucket else None
	if bucket and need == "read" and public_read and bucket.public:
		return bucket
	if not bucket or allowed is None:
		_refuse(objects.StorageError(f"Bucket {name} not found", 404))
	if need == "write" and allowed != "write":
		_refuse(objects.StorageError(f"You may read bucket {name} but not write to it", 403))
	return bucket


def _path(path) -> tuple[str, list[str]]:
	try:
		return objects.check_path(path)
	except objects.StorageError as e:
		_refuse(e)


def _object(bucket: str, path: str, lock: bool = False) -> dict:
	found = frappe.db.get_value(
		OBJECT,
		{"bucket": bucket, "object_name": path},
		["name", "file", "mime_type", "size", "metadata", "object_owner", "modified", "last_accessed_at"],
		as_dict=True,
		for_update=lock,
	)
	if not found:
		_refuse(objects.StorageError(f"Object {path} not found in bucket {bucket}", 404))
	return found


def _shown(obj) -> dict:
	meta = obj.get("metadata")
	if isinstance(meta, str):
		meta = json.loads(meta or "{}")
	return {
		"id": obj["name"],
		"bucket": obj.get("bucket"),
		"name": obj.get("object_name"),
		"mime_type": obj.get("mime_type"),
		"size": obj.get("size"),
		"metadata": meta or {},
		"owner": obj.get("object_owner"),
		"updated_at": str(obj["modified"]) if obj.get("modified") else None,
		"last_accessed_at": str(obj["last_accessed_at"]) if obj.get("last_accessed_at") else None,
	}


def _content(content) -> tuple[bytes, str | None]:
	"""(bytes, uploaded file name) from base64 text or the request's multipart `file`."""
	files = frappe.request.files if frappe.request else {}
	if content is None and files and "file" in files:
		upload = files["file"]
		return upload.stream.read(), upload.filename
	if not isinstance(content, str):
		_refuse(
			objects.StorageError("content must be base64 text, or send the file as multipart field 'file'")
		)
	try:
		return base64.b64decode(content, validate=True), None
	except (binascii.Error, ValueError):
		_refuse(objects.StorageError("content is not valid base64"))


def _limit(bucket: dict) -> int:
	from frappe.core.api.file import get_max_file_size

	site = get_max_file_size()
	own = bucket.get("file_size_limit") or 0
	return min(own, site) if own else site


def _store(
	bucket: dict, path: str, tokens: list[str], data: bytes, name_hint: str | None, metadata, upsert: bool
):
	allowed = [t.strip() for t in (bucket.get("allowed_mime_types") or "").splitlines() if t.strip()]
	try:
		mime = objects.check_content(
			data[: objects.SNIFF_BYTES], tokens[-1], len(data), allowed, _limit(bucket)
		)
	except objects.StorageError as e:
		_refuse(e)
	existing = frappe.db.get_value(
		OBJECT, {"bucket": bucket["name"], "object_name": path}, "name", for_update=True
	)
	if existing and not upsert:
		_refuse(
			objects.StorageError(
				f"Object {path} already exists in bucket {bucket['name']} (upsert replaces it)", 409
			)
		)
	obj = frappe.get_doc(OBJECT, existing) if existing else frappe.new_doc(OBJECT)
	old_file = obj.file if existing else None
	obj.update(
		{
			"bucket": bucket["name"],
			"object_name": path,
			"object_owner": obj.object_owner or frappe.session.user,
			"mime_type": mime,
			"size": len(data),
			"path_tokens": "\n".join(tokens),
			"metadata": json.dumps(metadata or {}),
			"last_accessed_at": now_datetime(),
		}
	)
	obj.flags.ignore_permissions = True
	# a new object's name is known before either row is written, so the File is made first and the
	# object is written once, already pointing at it
	name = obj.name if existing else str(uuid.uuid4())
	file = frappe.get_doc(
		{
			"doctype": "File",
			"file_name": tokens[-1],
			"is_private": 0 if bucket.get("public") else 1,
			"content": data,
			"attached_to_doctype": OBJECT,
			"attached_to_name": name,
			# the object's Attach field: Frappe then finds it attached and makes no second File
			"attached_to_field": "file",
		}
	)
	file.flags.ignore_permissions = True
	file.insert()
	obj.file = file.file_url
	if existing:
		obj.save()
	else:
		obj.insert(set_name=name)
	if old_file:
		_delete_files(obj.name, keep=file.name)
	return obj


def _delete_files(object_name: str, keep: str | None = None) -> None:
	for name in frappe.get_all(
		"File", filters={"attached_to_doctype": OBJECT, "attached_to_name": object_name}, pluck="name"
	):
		if name != keep:
			frappe.delete_doc("File", name, ignore_permissions=True)


@frappe.whitelist(methods=["POST", "PUT"])
@params.checked(json=("metadata",))
def upload(bucket=None, path=None, content=None, upsert=0, metadata=None) -> dict:
	"""Store `content` (base64, or a multipart file) at `path` in `bucket`; returns the object."""
	found = _bucket(bucket, "write")
	path, tokens = _path(path)
	if metadata is not None and not isinstance(metadata, dict):
		_refuse(objects.StorageError("metadata must be a JSON object"))
	data, _name = _content(content)
	obj = _store(found, path, tokens, data, _name, metadata, bool(frappe.utils.cint(upsert)))
	return _shown(obj.as_dict())


def _stream(obj: dict, download_name: str) -> Response:
	file_name = frappe.db.get_value(
		"File",
		{"attached_to_doctype": OBJECT, "attached_to_name": obj["name"]},
		"name",
		order_by="creation desc",
	)
	if not file_name:
		_refuse(objects.StorageError("This object has no content", 404))
	path = frappe.get_doc("File", file_name).get_full_path()
	handle = open(path, "rb")  # noqa: SIM115 (closed by the response when it is sent)
	response = Response(
		wrap_file(frappe.local.request.environ, handle),
		mimetype=obj.get("mime_type") or mimetypes.guess_type(download_name)[0] or "application/octet-stream",
		direct_passthrough=True,
	)
	response.headers["Content-Length"] = str(obj.get("size") or 0)
	response.headers["Content-Disposition"] = f'inline; filename="{download_name.replace(chr(34), "")}"'
	response.headers["X-Content-Type-Options"] = "nosniff"
	_touch(obj["name"])
	return response


def _touch(name: str) -> None:
	"""last_accessed_at now, to the minute (a download a minute writes nothing), unless another request
	holds the row: a download never waits on a writer."""
	try:
		frappe.db.sql(
			"""UPDATE "tabCauldron Storage Object" SET last_accessed_at = %(now)s
			WHERE name IN (SELECT name FROM "tabCauldron Storage Object" WHERE name = %(name)s
				AND (last_accessed_at IS NULL OR last_accessed_at < %(now)s - interval '1 minute')
				FOR UPDATE SKIP LOCKED)""",
			{"now": now_datetime(), "name": name},
		)
		if frappe.db._cursor.rowcount:
			frappe.local.flags.commit = True
	except Exception:  # a concurrent update after this transaction's snapshot: the other one counts
		frappe.db.rollback()


@frappe.whitelist(allow_guest=True, methods=["GET"])
@params.checked()
def download(bucket=None, path=None):
	"""The object's content, streamed."""
	found = _bucket(bucket, "read", public_read=True)
	path, tokens = _path(path)
	return _stream({**_object(found["name"], path)}, tokens[-1])


@frappe.whitelist(methods=["GET", "POST"])
@params.checked()
def list_objects(bucket=None, prefix=None, limit=100, offset=0) -> dict:
	"""Objects and folders directly under `prefix` ("" = the bucket's top), sorted by name."""
	found = _bucket(bucket, "read")
	try:
		prefix = objects.check_prefix(prefix)
	except objects.StorageError as e:
		_refuse(e)
	limit, offset = frappe.utils.cint(limit), frappe.utils.cint(offset)
	if not 1 <= limit <= MAX_LIST or offset < 0:
		_refuse(objects.StorageError(f"limit is 1 to {MAX_LIST} and offset at least 0"))
	if prefix and not prefix.endswith("/"):
		prefix += "/"
	rows = frappe.db.sql(
		"""
		WITH under AS (
			SELECT name, object_name, mime_type, size, modified, last_accessed_at, metadata, object_owner,
				substr(object_name, %(skip)s) AS rest
			FROM "tabCauldron Storage Object"
			WHERE bucket = %(bucket)s AND left(object_name, %(len)s) = %(prefix)s
		), entries AS (
			SELECT CASE WHEN strpos(rest, '/') > 0 THEN split_part(rest, '/', 1) ELSE rest END AS entry,
				bool_or(strpos(rest, '/') > 0) AS is_folder, count(*) AS objects,
				(array_agg(name ORDER BY object_name))[1] AS first
			FROM under GROUP BY 1
		)
		SELECT e.entry, e.is_folder AND e.objects >= 1 AS is_folder, e.objects,
			u.name, u.mime_type, u.size, u.modified, u.last_accessed_at, u.metadata, u.object_owner
		FROM entries e LEFT JOIN under u ON u.name = e.first AND NOT e.is_folder
		ORDER BY e.is_folder DESC, e.entry
		LIMIT %(limit)s OFFSET %(offset)s
		""",
		{
			"bucket": found["name"],
			"prefix": prefix,
			"len": len(prefix),
			"skip": len(prefix) + 1,
			"limit": limit + 1,
			"offset": offset,
		},
		as_dict=True,
	)
	more = len(rows) > limit
	items = []
	for row in rows[:limit]:
		if row.is_folder:
			items.append({"name": row.entry, "folder": True, "objects": row.objects})
		else:
			items.append(
				{
					"folder": False,
					**_shown({**row, "bucket": found["name"], "object_name": prefix + row.entry}),
					"name": row.entry,
					"path": prefix + row.entry,
				}
			)
	return {"prefix": prefix, "items": items, "next_offset": offset + limit if more else None}


def _copy_or_move(bucket, from_path, to_path, move: bool) -> dict:
	found = _bucket(bucket, "write")
	source, _tokens = _path(from_path)
	target, target_tokens = _path(to_path)
	if source == target:
		_refuse(objects.StorageError("the source and the target are the same path"))
	obj = _object(found["name"], source, lock=True)
	if frappe.db.exists(OBJECT, {"bucket": found["name"], "object_name": target}):
		_refuse(objects.StorageError(f"Object {target} already exists in bucket {found['name']}", 409))
	if move:
		doc = frappe.get_doc(OBJECT, obj["name"])
		doc.object_name = target
		doc.path_tokens = "\n".join(target_tokens)
		doc.flags.ignore_permissions = True
		doc.save()
		return _shown(doc.as_dict())
	file_name = frappe.db.get_value(
		"File",
		{"attached_to_doctype": OBJECT, "attached_to_name": obj["name"]},
		"name",
		order_by="creation desc",
	)
	data = frappe.get_doc("File", file_name).get_content() if file_name else b""
	if isinstance(data, str):  # Frappe decodes text files
		data = data.encode()
	meta = obj.get("metadata")
	meta = json.loads(meta) if isinstance(meta, str) else meta
	copied = _store(found, target, target_tokens, data, None, meta, False)
	return _shown(copied.as_dict())


@frappe.whitelist(methods=["POST"])
@params.checked()
def move(bucket=None, from_path=None, to_path=None) -> dict:
	return _copy_or_move(bucket, from_path, to_path, move=True)


@frappe.whitelist(methods=["POST"])
@params.checked()
def copy(bucket=None, from_path=None, to_path=None) -> dict:
	return _copy_or_move(bucket, from_path, to_path, move=False)


@frappe.whitelist(methods=["POST", "DELETE"])
@params.checked(json=("paths",))
def remove(bucket=None, paths=None) -> list:
	"""Delete the objects at `paths` (a list, or one path) and their Files; returns the paths removed."""
	found = _bucket(bucket, "write")
	if isinstance(paths, str):
		paths = [paths]
	if not isinstance(paths, list) or not paths or len(paths) > MAX_LIST:
		_refuse(objects.StorageError(f"paths must be a list of 1 to {MAX_LIST} object paths"))
	checked = [_path(p)[0] for p in paths]
	for path in checked:  # every path found before anything is deleted
		_object(found["name"], path)
	for path in checked:
		name = _object(found["name"], path, lock=True)["name"]
		frappe.delete_doc(OBJECT, name, ignore_permissions=True)
	return checked


@frappe.whitelist(methods=["POST", "GET"])
@params.checked()
def create_signed_url(bucket=None, path=None, expires_in=3600) -> dict:
	"""A URL that downloads the object without a session until it expires."""
	found = _bucket(bucket, "read")
	path, _tokens = _path(path)
	_object(found["name"], path)
	try:
		expires, signature = objects.sign(_secret(), found["name"], path, frappe.utils.cint(expires_in))
	except objects.StorageError as e:
		_refuse(e)
	query = urlencode({"bucket": found["name"], "path": path, "expires": expires, "signature": signature})
	return {
		"signed_url": get_url(f"/api/method/cauldron.api.storage.download_signed?{query}"),
		"expires": expires,
	}


def _secret() -> str:
	"""The site's encryption_key (made and kept in site_config.json on first use, as Frappe does for
	Password fields): signed URLs of one site are worthless on another."""
	from frappe.utils.password import get_encryption_key

	return get_encryption_key()


@frappe.whitelist(allow_guest=True, methods=["GET"])
@params.checked()
def download_signed(bucket=None, path=None, expires=None, signature=None):
	"""The object's content for a genuine, unexpired signed URL; no session needed."""
	if not isinstance(bucket, str) or not isinstance(path, str):
		_refuse(objects.StorageError("the signed URL is malformed", 403))
	try:
		objects.check_signature(_secret(), bucket, path, expires, signature)
	except objects.StorageError as e:
		_refuse(e)
	_path(path)
	return _stream(_object(bucket, path), path.rsplit("/", 1)[-1])
