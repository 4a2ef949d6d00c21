// Aether Approval Inbox: the pending HITL Approvals assigned to the user, answered in place.
frappe.pages["aether-approval-inbox"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Approval Inbox"),
		single_column: true,
	});
	new ApprovalInbox(page);
};

class ApprovalInbox {
	constructor(page) {
		this.page = page;
		this.everyone = false;
		page.set_primary_action(__("Refresh"), () => this.load(), "refresh");
		this.scope = page.add_field({
			fieldname: "everyone",
			fieldtype: "Check",
			label: __("Every pending approval I can read"),
			change: () => {
				this.everyone = !!this.scope.get_value();
				this.load();
			},
		});
		this.$body = $('<div class="aether-inbox" style="padding: var(--padding-md)"></div>').appendTo(
			page.main
		);
		this.$body.on("click", ".aether-respond", (e) => {
			const $b = $(e.currentTarget);
			this.respond($b.attr("data-name"), $b.attr("data-decision"));
		});
		this.load();
	}

	load() {
		frappe
			.call("cauldron.api.aether.inbox", { everyone: this.everyone ? 1 : 0 })
			.then((r) => this.render(r.message || []));
	}

	render(rows) {
		if (!rows.length) {
			this.$body.html(`<p class="text-muted">${__("Nothing is waiting for your answer.")}</p>`);
			return;
		}
		const esc = frappe.utils.escape_html;
		const body = rows
			.map((r) => {
				const mine = r.owner === frappe.session.user;
				return `<tr>
				<td><a href="/app/aether-hitl-approval/${encodeURIComponent(r.name)}">${esc(
					r.description || r.approval_type
				)}</a><div class="text-muted small">${esc(r.approval_type)}</div></td>
				<td><a href="/app/aether-agent-task/${encodeURIComponent(r.task)}">${esc(
					r.task_name || r.task
				)}</a><div class="text-muted small">${esc(r.task_type || "")} · ${__("priority")} ${
					r.priority ?? ""
				}</div></td>
				<td>${esc(r.owner)}</td>
				<td>${r.expires_at ? frappe.datetime.comment_when(r.expires_at) : ""}</td>
				<td class="text-right">
					${
						mine
							? `<span class="text-muted small">${__("You asked for it")}</span>`
							: `<button class="btn btn-xs btn-primary aether-respond" data-name="${esc(
									r.name
							  )}" data-decision="approve">${__("Approve")}</button>`
					}
					<button class="btn btn-xs btn-default aether-respond" data-name="${esc(
						r.name
					)}" data-decision="reject">${__("Reject")}</button>
				</td></tr>`;
			})
			.join("");
		this.$body.html(`<table class="table table-bordered">
			<thead><tr><th>${__("Approval")}</th><th>${__("Task")}</th><th>${__(
			"Requested By"
		)}</th><th>${__("Expires")}</th><th></th></tr></thead><tbody>${body}</tbody></table>`);
	}

	respond(approval, decision) {
		const dialog = new frappe.ui.Dialog({
			title: decision === "approve" ? __("Approve") : __("Reject"),
			fields: [
				{ fieldname: "notes", fieldtype: "Small Text", label: __("Notes") },
				{
					fieldname: "response",
					fieldtype: "Code",
					options: "JSON",
					label: __("Response (JSON, optional)"),
				},
			],
			primary_action: (values) =>
				frappe
					.call({
						method: "cauldron.api.aether.respond",
						type: "POST",
						args: {
							approval,
							decision,
							notes: values.notes || null,
							response: values.response || null,
						},
					})
					.then(() => {
						dialog.hide();
						this.load();
					}),
		});
		dialog.show();
	}
}
