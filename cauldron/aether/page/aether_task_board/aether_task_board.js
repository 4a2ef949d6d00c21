// Aether Task Board: Agent Tasks in a column per status of the state machine, refreshed every 15 s.
frappe.pages["aether-task-board"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Task Board"),
		single_column: true,
	});
	new TaskBoard(page);
};

const STATUS_COLORS = {
	pending: "gray",
	awaiting_approval: "orange",
	ready: "blue",
	running: "purple",
	completed: "green",
	failed: "red",
	cancelled: "darkgrey",
};

class TaskBoard {
	constructor(page) {
		this.page = page;
		page.set_primary_action(__("Refresh"), () => this.load(), "refresh");
		page.set_secondary_action(__("New Task"), () => frappe.new_doc("Aether Agent Task"));
		this.definition = page.add_field({
			fieldname: "definition",
			fieldtype: "Link",
			options: "Aether Agent Definition",
			label: __("Agent Definition"),
			change: () => this.load(),
		});
		this.task_type = page.add_field({
			fieldname: "task_type",
			fieldtype: "Select",
			label: __("Task Type"),
			options: [
				"",
				"analysis",
				"research",
				"generation",
				"classification",
				"extraction",
				"automation",
				"monitoring",
				"remediation",
				"custom",
			],
			change: () => this.load(),
		});
		this.$body = $(
			`<div class="aether-task-board" style="display: flex; gap: var(--margin-sm); overflow-x: auto;
				padding: var(--padding-sm) 0; align-items: flex-start"></div>`
		).appendTo(page.main);
		this.load();
		this.timer = setInterval(() => {
			if (frappe.get_route_str() === "aether-task-board" && !document.hidden) this.load();
		}, 15000);
	}

	load() {
		// only the filters that are set: an empty one is no filter (and no document name)
		const args = {};
		if (this.definition.get_value()) args.definition = this.definition.get_value();
		if (this.task_type.get_value()) args.task_type = this.task_type.get_value();
		frappe
			.call("cauldron.api.aether.board", args)
			.then((r) => this.render(r.message));
	}

	card(t) {
		const esc = frappe.utils.escape_html;
		const when = (v) => (v ? frappe.datetime.comment_when(v) : "");
		const lines = [`${esc(t.task_type)} · ${__("priority")} ${t.priority ?? ""}`];
		if (t.instance_name || t.assigned_to) {
			lines.push(`${__("held by")} ${esc(t.instance_name || t.assigned_to)}`);
		}
		if (t.lease_expires_at) lines.push(`${__("lease ends")} ${when(t.lease_expires_at)}`);
		if (t.not_before) lines.push(`${__("not before")} ${when(t.not_before)}`);
		if (t.attempts) lines.push(`${__("attempt")} ${t.attempts}/${t.max_attempts}`);
		if (t.error_message) lines.push(`<span class="text-danger">${esc(t.error_message.slice(0, 120))}</span>`);
		lines.push(`<span class="text-muted">${when(t.modified)}</span>`);
		return `<a class="aether-task-card" href="/app/aether-agent-task/${encodeURIComponent(t.name)}"
			style="display: block; padding: var(--padding-sm); margin-bottom: var(--margin-sm);
			border-radius: var(--border-radius); background: var(--card-bg); box-shadow: var(--card-shadow);
			color: inherit; text-decoration: none">
			<div class="bold ellipsis">${esc(t.task_name || t.name)}</div>
			<div class="small">${lines.join("<br>")}</div></a>`;
	}

	render(data) {
		const columns = (data && data.columns) || [];
		this.$body.html(
			columns
				.map((c) => {
					const more =
						c.count > c.tasks.length
							? `<a class="small" href="/app/aether-agent-task?status=${encodeURIComponent(
									c.status
							  )}">${__("{0} more", [c.count - c.tasks.length])}</a>`
							: "";
					return `<div class="aether-task-column" data-status="${c.status}"
						style="flex: 0 0 240px; background: var(--subtle-fg); border-radius: var(--border-radius);
						padding: var(--padding-sm)">
						<div style="margin-bottom: var(--margin-sm)">
							<span class="indicator-pill ${STATUS_COLORS[c.status] || "gray"}">${__(
						frappe.unscrub(c.status)
					)}</span>
							<span class="text-muted small">${c.count}</span>
						</div>
						${c.tasks.map((t) => this.card(t)).join("")}${more}
					</div>`;
				})
				.join("")
		);
	}
}
