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
		frm.add_custom_button(__("Task Board"), () => frappe.set_route("aether-task-board"));
		show_runtime(frm);
	},
});

// Its current task and lease, how long since its last heartbeat, the tasks it holds and its latest
// interactions (cauldron.api.aether.instance_summary).
function show_runtime(frm) {
	frappe
		.call("cauldron.api.aether.instance_summary", { instance: frm.doc.name, interactions: 10 })
		.then((r) => {
			const s = r.message;
			if (!s) return;
			const esc = frappe.utils.escape_html;
			const age = (seconds) => (seconds === null || seconds === undefined ? "-" : format_seconds(seconds));
			const parts = [];
			if (s.heartbeat_age_seconds !== null) {
				parts.push(
					`<span class="${s.heartbeat_stale ? "text-danger" : ""}">${__("Last heartbeat {0} ago", [
						age(s.heartbeat_age_seconds),
					])}</span>`
				);
			} else {
				parts.push(__("No heartbeat yet"));
			}
			if (s.current) {
				const c = s.current;
				const left =
					c.lease_expires_at && c.status === "running"
						? __("lease ends {0}", [frappe.datetime.comment_when(c.lease_expires_at)])
						: esc(c.status);
				parts.push(
					__("Working on {0} ({1})", [
						`<a href="/app/aether-agent-task/${encodeURIComponent(c.name)}">${esc(
							c.task_name || c.name
						)}</a>`,
						left,
					])
				);
			}
			frm.dashboard.set_headline(parts.join(" · "));

			const held = (s.held || [])
				.map(
					(t) => `<tr><td><a href="/app/aether-agent-task/${encodeURIComponent(t.name)}">${esc(
						t.task_name || t.name
					)}</a></td><td>${esc(t.task_type)}</td><td>${__("attempt")} ${t.attempts}/${
						t.max_attempts
					}</td><td>${
						t.lease_seconds_left === null
							? "-"
							: t.lease_seconds_left < 0
							? `<span class="text-danger">${__("lease expired {0} ago", [
									age(-t.lease_seconds_left),
							  ])}</span>`
							: __("{0} left", [age(t.lease_seconds_left)])
					}</td></tr>`
				)
				.join("");
			if (held) {
				frm.dashboard.add_section(
					`<table class="table table-sm">${held}</table>`,
					__("Tasks held ({0})", [s.held.length])
				);
			}
			const rows = (s.interactions || [])
				.map(
					(i) => `<li>${frappe.datetime.comment_when(i.created_at)}: <b>${esc(
						i.interaction_type
					)}</b> <span class="text-muted">${esc(JSON.stringify(i.content).slice(0, 160))}</span></li>`
				)
				.join("");
			if (rows) {
				frm.dashboard.add_section(
					`<ul class="list-unstyled">${rows}</ul>`,
					__("Recent interactions")
				);
			}
		});
}

function format_seconds(seconds) {
	seconds = Math.round(seconds);
	if (seconds < 120) return `${seconds}s`;
	if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
	if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
	return `${Math.round(seconds / 86400)}d`;
}
