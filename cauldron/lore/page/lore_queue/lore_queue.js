// Lore Embedding Queue: command.work_queue's lore.embed counts, its parked items with Retry, the models.
frappe.pages["lore-queue"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Lore Embedding Queue"),
		single_column: true,
	});
	new LoreQueue(page);
};

class LoreQueue {
	constructor(page) {
		this.page = page;
		page.set_primary_action(__("Refresh"), () => this.load(), "refresh");
		page.add_inner_button(__("Retry All Failed"), () => this.retry(null));
		page.add_inner_button(__("Embed All Documents"), () =>
			frappe.confirm(__("Queue every Lore Document to be embedded again?"), () =>
				frappe
					.call({ method: "cauldron.api.lore.embed_all", type: "POST" })
					.then((r) => {
						frappe.show_alert(__("{0} documents queued", [r.message]));
						this.load();
					})
			)
		);
		this.$body = $('<div class="lore-queue" style="padding: var(--padding-md)"></div>').appendTo(page.main);
		this.$body.on("click", ".lore-retry", (e) => this.retry([Number($(e.currentTarget).attr("data-id"))]));
		this.load();
	}

	load() {
		frappe.call("cauldron.api.lore.pipeline_status").then((r) => this.render(r.message));
	}

	retry(ids) {
		frappe
			.call({
				method: "cauldron.api.lore.retry",
				args: ids ? { ids: JSON.stringify(ids) } : {},
				type: "POST",
			})
			.then((r) => {
				frappe.show_alert(__("{0} items back in the queue", [r.message]));
				this.load();
			});
	}

	render(s) {
		const esc = frappe.utils.escape_html;
		const q = s.queue;
		const counts = [
			[__("Pending"), q.pending],
			[__("Due now"), q.due],
			[__("Running"), q.running],
			[__("Lease expired"), q.expired],
			[__("Failed (parked)"), q.failed],
			[__("Done (kept 7 days)"), q.done],
		]
			.map(([label, n]) => `<div class="col-sm-2"><div class="text-muted small">${label}</div><h3>${n}</h3></div>`)
			.join("");
		const oldest =
			q.oldest_pending_seconds != null
				? __("Oldest pending item waits {0} s.", [Math.round(q.oldest_pending_seconds)])
				: "";
		const models = (s.models || [])
			.map(
				(m) => `<tr><td>${esc(m.model)}</td><td>${esc(m.status)}</td><td>${m.dimension}</td>
					<td>${m.chunks}</td><td>${esc(m.activated_at || "")}</td></tr>`
			)
			.join("");
		const failed = (s.failed || [])
			.map(
				(f) => `<tr>
					<td><a href="/app/lore-document/${encodeURIComponent(f.key)}">${esc(f.title || f.key)}</a></td>
					<td>${f.attempts}</td>
					<td class="small" style="white-space: pre-wrap">${esc(f.last_error || "")}</td>
					<td><button class="btn btn-xs btn-default lore-retry" data-id="${f.id}">${__("Retry")}</button></td>
				</tr>`
			)
			.join("");
		this.$body.html(`
			<p>${__("Provider")}: <b>${esc(s.provider)}</b> · ${__("model")} <code>${esc(s.provider_model)}</code>
				· ${__("active")} <code>${esc(s.active_model || "–")}</code>
				${s.building_model ? `· ${__("building")} <code>${esc(s.building_model)}</code>` : ""}</p>
			<div class="row">${counts}</div>
			<p class="text-muted small">${oldest}</p>
			<h5>${__("Failed items")}</h5>
			${
				failed
					? `<table class="table table-bordered lore-failed"><thead><tr><th>${__("Document")}</th>
						<th>${__("Attempts")}</th><th>${__("Error")}</th><th></th></tr></thead><tbody>${failed}</tbody></table>`
					: `<p class="text-muted">${__("None.")}</p>`
			}
			<h5>${__("Models")}</h5>
			<table class="table table-bordered"><thead><tr><th>${__("Model")}</th><th>${__("Status")}</th>
				<th>${__("Dimension")}</th><th>${__("Chunks")}</th><th>${__("Active since")}</th></tr></thead>
				<tbody>${models}</tbody></table>`);
	}
}
