// A bucket's form lists its objects like a file browser: folders from the paths, download links,
// upload into the folder shown (cauldron.api.storage).
const STORAGE_API = "cauldron.api.storage";

frappe.ui.form.on("Cauldron Storage Bucket", {
	setup(frm) {
		frm.set_query("bucket_owner", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (frm.is_new()) {
			frm.get_field("object_browser").$wrapper.html(
				`<p class="text-muted">${__("Save the bucket to add objects.")}</p>`
			);
			return;
		}
		frm.cauldron_prefix = frm.cauldron_prefix || "";
		render_browser(frm);
	},
});

function render_browser(frm, offset = 0) {
	const $wrapper = frm.get_field("object_browser").$wrapper;
	const prefix = frm.cauldron_prefix;
	frappe.call({
		method: `${STORAGE_API}.list_objects`,
		args: { bucket: frm.doc.name, prefix, limit: 100, offset },
		callback: (r) => {
			const data = r.message || { items: [] };
			$wrapper.html(browser_html(frm, data, offset));
			bind_browser(frm, $wrapper, data, offset);
		},
	});
}

function crumbs(frm) {
	const parts = frm.cauldron_prefix.split("/").filter(Boolean);
	let path = "";
	const links = [
		`<a class="storage-crumb" data-prefix="">${frappe.utils.escape_html(frm.doc.name)}</a>`,
	];
	for (const part of parts) {
		path += part + "/";
		links.push(
			`<a class="storage-crumb" data-prefix="${encodeURIComponent(path)}">${frappe.utils.escape_html(part)}</a>`
		);
	}
	return links.join(" / ");
}

function browser_html(frm, data, offset) {
	const rows = data.items
		.map((item) => {
			const name = frappe.utils.escape_html(item.name);
			if (item.folder) {
				return `<tr>
					<td><a class="storage-folder" data-name="${encodeURIComponent(item.name)}">
						${frappe.utils.icon("folder-normal", "sm")} ${name}/</a></td>
					<td class="text-muted">${__("{0} objects", [item.objects])}</td><td></td><td></td></tr>`;
			}
			const href = `/api/method/${STORAGE_API}.download?bucket=${encodeURIComponent(
				frm.doc.name
			)}&path=${encodeURIComponent(item.path)}`;
			return `<tr>
				<td><a href="${href}" target="_blank">${frappe.utils.icon("file", "sm")} ${name}</a></td>
				<td class="text-muted">${frappe.utils.escape_html(item.mime_type || "")}</td>
				<td class="text-muted text-right">${format_number(item.size || 0, null, 0)} B</td>
				<td class="text-right">
					<a class="storage-open" data-id="${item.id}">${__("Details")}</a> ·
					<a class="storage-delete text-danger" data-path="${encodeURIComponent(item.path)}">${__(
						"Delete"
					)}</a>
				</td></tr>`;
		})
		.join("");
	const empty = `<tr><td colspan="4" class="text-muted">${__("No objects here yet.")}</td></tr>`;
	const pager =
		data.next_offset != null || offset > 0
			? `<div class="mt-2">
				${offset > 0 ? `<button class="btn btn-xs btn-default storage-prev">${__("Previous")}</button>` : ""}
				${data.next_offset != null ? `<button class="btn btn-xs btn-default storage-next">${__("Next")}</button>` : ""}
			</div>`
			: "";
	return `<div class="cauldron-storage-browser">
		<div class="d-flex justify-content-between align-items-center mb-2">
			<div class="storage-crumbs">${crumbs(frm)}</div>
			<div>
				<input type="file" class="storage-file hidden" multiple>
				<button class="btn btn-xs btn-primary storage-upload">${__("Upload")}</button>
			</div>
		</div>
		<table class="table table-sm table-hover">
			<thead><tr><th>${__("Name")}</th><th>${__("Type")}</th>
				<th class="text-right">${__("Size")}</th><th></th></tr></thead>
			<tbody>${rows || empty}</tbody>
		</table>${pager}</div>`;
}

function bind_browser(frm, $wrapper, data, offset) {
	$wrapper.find(".storage-crumb").on("click", (e) => {
		frm.cauldron_prefix = decodeURIComponent($(e.currentTarget).attr("data-prefix"));
		render_browser(frm);
	});
	$wrapper.find(".storage-folder").on("click", (e) => {
		frm.cauldron_prefix += decodeURIComponent($(e.currentTarget).attr("data-name")) + "/";
		render_browser(frm);
	});
	$wrapper.find(".storage-open").on("click", (e) => {
		frappe.set_route("Form", "Cauldron Storage Object", $(e.currentTarget).attr("data-id"));
	});
	$wrapper.find(".storage-delete").on("click", (e) => {
		const path = decodeURIComponent($(e.currentTarget).attr("data-path"));
		frappe.confirm(__("Delete {0}?", [frappe.utils.escape_html(path)]), () =>
			frappe.call({
				method: `${STORAGE_API}.remove`,
				args: { bucket: frm.doc.name, paths: [path] },
				callback: () => render_browser(frm, offset),
			})
		);
	});
	$wrapper.find(".storage-prev").on("click", () => render_browser(frm, Math.max(0, offset - 100)));
	$wrapper.find(".storage-next").on("click", () => render_browser(frm, data.next_offset));
	const $input = $wrapper.find(".storage-file");
	$wrapper.find(".storage-upload").on("click", () => $input.trigger("click"));
	$input.on("change", async () => {
		for (const file of $input[0].files) {
			await upload(frm, file);
		}
		render_browser(frm);
	});
}

async function upload(frm, file) {
	const form = new FormData();
	form.append("bucket", frm.doc.name);
	form.append("path", frm.cauldron_prefix + file.name);
	form.append("file", file, file.name);
	const response = await fetch(`/api/method/${STORAGE_API}.upload`, {
		method: "POST",
		headers: { "X-Frappe-CSRF-Token": frappe.csrf_token, Accept: "application/json" },
		body: form,
	});
	if (!response.ok) {
		const body = await response.json().catch(() => ({}));
		let message = body.exception || response.statusText;
		try {
			message = JSON.parse(JSON.parse(body._server_messages)[0]).message;
		} catch (e) {
			// keep the exception text
		}
		frappe.msgprint({ title: __("Upload failed: {0}", [file.name]), message, indicator: "red" });
	} else {
		frappe.show_alert({ message: __("Uploaded {0}", [file.name]), indicator: "green" });
	}
}
