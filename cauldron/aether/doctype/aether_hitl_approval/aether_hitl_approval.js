frappe.ui.form.on("Aether HITL Approval", {
	refresh(frm) {
		if (frm.is_new() || frm.doc.status !== "pending") {
			return;
		}
		if (frm.doc.expires_at) {
			frm.dashboard.set_headline(
				__("Expires {0} unless answered; its task is then cancelled.", [
					frappe.datetime.comment_when(frm.doc.expires_at),
				])
			);
		}
		// Whoever asked for the approval cannot give it (the server refuses it too).
		const decisions = [[__("Reject"), "reject"]];
		if (frm.doc.owner !== frappe.session.user) {
			decisions.unshift([__("Approve"), "approve"]);
		}
		for (const [label, decision] of decisions) {
			frm.add_custom_button(label, () => respond(frm, decision));
		}
	},
});

function respond(frm, decision) {
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
		primary_action_label: decision === "approve" ? __("Approve") : __("Reject"),
		primary_action(values) {
			frappe
				.call("cauldron.api.aether.respond", {
					approval: frm.doc.name,
					decision,
					notes: values.notes || null,
					response: values.response || null,
				})
				.then(() => {
					dialog.hide();
					frm.reload_doc();
				});
		},
	});
	dialog.show();
}
