frappe.ui.form.on("Aether Agent Instance", {
	refresh(frm) {
		if (frm.is_new()) {
			return;
		}
		frm.add_custom_button(__("Interactions"), () =>
			frappe.set_route("List", "Aether Agent Interaction", { agent_instance_id: frm.doc.name })
		);
		frm.add_custom_button(__("Tasks"), () =>
			frappe.set_route("List", "Aether Agent Task", { assigned_to: frm.doc.name })
		);
		show_runtime(frm);
	},
});

// Its current task and lease, how long since its last heartbeat, and its latest interactions.
function show_runtime(frm) {
	const parts = [];
	if (frm.doc.last_heartbeat) {
		parts.push(__("Last heartbeat {0}", [frappe.datetime.comment_when(frm.doc.last_heartbeat)]));
	}
	const interactions = frappe.db.get_list("Aether Agent Interaction", {
		filters: { agent_instance_id: frm.doc.name },
		fields: ["name", "created_at", "interaction_type", "content"],
		order_by: "created_at desc",
		limit: 5,
	});
	const task = frm.doc.current_task
		? frappe.db.get_value("Aether Agent Task", frm.doc.current_task, [
				"task_name",
				"status",
				"lease_expires_at",
		  ])
		: Promise.resolve(null);
	Promise.all([task, interactions]).then(([current, rows]) => {
		if (current && current.message) {
			const t = current.message;
			parts.push(
				__("Working on {0} ({1}), lease ends {2}", [
					frappe.utils.escape_html(t.task_name),
					t.status,
					t.lease_expires_at ? frappe.datetime.comment_when(t.lease_expires_at) : "-",
				])
			);
		}
		if (parts.length) {
			frm.dashboard.set_headline(parts.join(" · "));
		}
		if (rows && rows.length) {
			const items = rows
				.map(
					(r) =>
						`<li>${frappe.datetime.comment_when(r.created_at)}: <b>${frappe.utils.escape_html(
							r.interaction_type
						)}</b> ${frappe.utils.escape_html(JSON.stringify(r.content).slice(0, 120))}</li>`
				)
				.join("");
			frm.dashboard.add_section(`<ul class="list-unstyled">${items}</ul>`, __("Recent interactions"));
		}
	});
}
