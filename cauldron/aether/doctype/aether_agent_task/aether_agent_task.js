frappe.ui.form.on("Aether Agent Task", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (frm.is_new()) {
			return;
		}
		if (frm.doc.requires_approval && frm.doc.status === "awaiting_approval") {
			frm.add_custom_button(__("Approvals"), () =>
				frappe.set_route("List", "Aether HITL Approval", { task: frm.doc.name })
			);
		}
		if (!["completed", "failed", "cancelled"].includes(frm.doc.status)) {
			frm.add_custom_button(__("Cancel Task"), () =>
				frappe.prompt(
					{ fieldname: "reason", fieldtype: "Small Text", label: __("Reason") },
					(values) =>
						frappe
							.call("cauldron.api.aether.cancel_task", {
								task: frm.doc.name,
								reason: values.reason || null,
							})
							.then(() => frm.reload_doc()),
					__("Cancel Task"),
					__("Cancel Task")
				)
			);
		}
		if (frm.doc.status === "running" && frm.doc.lease_expires_at) {
			frm.dashboard.set_headline(
				__("Held by {0}; lease ends {1}.", [
					frm.doc.assigned_to,
					frappe.datetime.comment_when(frm.doc.lease_expires_at),
				])
			);
		}
	},
});
