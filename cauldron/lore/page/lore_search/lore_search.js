// Lore Search: a question in, ranked passages of the Lore Documents the user may read out.
frappe.pages["lore-search"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Lore Search"),
		single_column: true,
	});
	new LoreSearch(page);
};

class LoreSearch {
	constructor(page) {
		this.page = page;
		this.query = page.add_field({
			fieldname: "query",
			label: __("Question"),
			fieldtype: "Data",
			placeholder: __("Ask the knowledge base…"),
		});
		this.query.$input.on("keydown", (e) => e.key === "Enter" && this.run());
		this.mode = page.add_field({
			fieldname: "mode",
			label: __("Mode"),
			fieldtype: "Select",
			options: [
				{ value: "hybrid", label: __("Hybrid") },
				{ value: "vector", label: __("Meaning (vector)") },
				{ value: "keyword", label: __("Words (BM25)") },
			],
			default: "hybrid",
			change: () => this.run(),
		});
		this.part = page.add_field({
			fieldname: "part",
			label: __("In"),
			fieldtype: "Select",
			options: [
				{ value: "", label: __("Content and attachments") },
				{ value: "content", label: __("Content only") },
				{ value: "attachment", label: __("Attachments only") },
			],
			change: () => this.run(),
		});
		this.source_type = page.add_field({
			fieldname: "source_type",
			label: __("Source Type"),
			fieldtype: "Select",
			options: ["", "manual", "upload", "web", "knowledge_source", "api", "email", "chat"],
			change: () => this.run(),
		});
		this.since = page.add_field({
			fieldname: "since",
			label: __("Since"),
			fieldtype: "Date",
			change: () => this.run(),
		});
		this.limit = page.add_field({
			fieldname: "limit",
			label: __("Results"),
			fieldtype: "Int",
			default: 10,
			change: () => this.run(),
		});
		page.set_primary_action(__("Search"), () => this.run(), "search");
		this.$results = $('<div class="lore-search-results"></div>').appendTo(page.main);
		this.$results.html(this.note(__("Type a question and press Enter.")));
		// a link may carry the question: /app/lore-search?query=...
		const asked = (frappe.route_options || {}).query || frappe.utils.get_query_params().query;
		if (asked) {
			frappe.route_options = null;
			Promise.resolve(this.query.set_value(asked)).then(() => this.run());
		}
	}

	note(text) {
		return `<div class="text-muted" style="padding: var(--padding-md)">${text}</div>`;
	}

	run() {
		const query = (this.query.get_value() || "").trim();
		if (!query) return;
		const metadata = {};
		if (this.part.get_value()) metadata.part = this.part.get_value();
		if (this.source_type.get_value()) metadata.source_type = this.source_type.get_value();
		const args = {
			query,
			mode: this.mode.get_value() || "hybrid",
			limit: this.limit.get_value() || 10,
			metadata_filter: Object.keys(metadata).length ? JSON.stringify(metadata) : null,
			since: this.since.get_value() || null,
		};
		this.$results.html(this.note(__("Searching…")));
		frappe
			.call({ method: "cauldron.api.lore.search", args, type: "POST" })
			.then((r) => this.render(r.message || []))
			.catch(() => this.$results.html(this.note(__("The search failed."))));
	}

	render(hits) {
		if (!hits.length) {
			this.$results.html(this.note(__("Nothing found among the documents you may read.")));
			return;
		}
		const esc = frappe.utils.escape_html;
		const rows = hits.map((hit, i) => {
			const where = [];
			const meta = hit.metadata || {};
			if (meta.part === "attachment" && meta.file)
				where.push(__("attachment {0}", [esc(meta.file)]));
			if ((meta.headings || []).length) where.push(meta.headings.map(esc).join(" › "));
			const parts = [];
			if (hit.vector_rank) parts.push(__("meaning #{0}", [hit.vector_rank]));
			if (hit.keyword_rank) parts.push(__("words #{0}", [hit.keyword_rank]));
			// the highlight is HTML-escaped by the server, with the matched words in <mark>
			const passage = hit.highlight || esc(hit.content.slice(0, 400));
			// the Lore Entities linked to the hit's document (those the user may read)
			const entities = (hit.entities || [])
				.map(
					(
						e
					) => `<a class="lore-hit-entity" href="${esc(e.url)}" title="${esc(__(e.entity_type))}"
						style="display: inline-block; margin: 4px 4px 0 0; padding: 1px 8px; font-size: var(--text-xs);
							border-radius: var(--border-radius-full); background: var(--bg-gray); color: var(--text-color)"
						><span class="text-muted">${esc(__(e.entity_type))}</span> ${esc(e.entity_name || e.name)}</a>`
				)
				.join("");
			return `
				<div class="lore-hit" style="padding: var(--padding-md); border-bottom: 1px solid var(--border-color)">
					<div class="flex justify-between">
						<a class="lore-hit-title bold" href="${esc(hit.url)}">${i + 1}. ${esc(hit.title || hit.document)}</a>
						<span class="text-muted small">${parts.join(" · ")} · ${__("score")} ${Number(hit.score).toFixed(4)}</span>
					</div>
					<div class="text-muted small">${where.join(" · ")}${
						hit.source_url
							? ` · <a href="${esc(hit.source_url)}" target="_blank" rel="noopener">${__("open the source")}</a>`
							: ""
					}</div>
					<div class="lore-hit-passage" style="margin-top: 4px">${passage}</div>
					${entities ? `<div class="lore-hit-entities">${entities}</div>` : ""}
				</div>`;
		});
		this.$results.html(rows.join(""));
	}
}
