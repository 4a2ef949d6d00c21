frappe.ui.form.on("Aether HITL Approval", {
	refresh(frm) {
		if (frm.is_new() || frm.doc.status !== "pending") {
			return;
		}
		// Whoever asked for the approval cannot give it (the server refuses it too).
		const responses = [[__("Reject"), "rejected"]];
		if (frm.doc.owner !== frappe.session.user) {
			responses.unshift([__("Approve"), "approved"]);
		}
		for (const [label, status] of responses) {
			frm.add_custom_button(label, () => {
				frm.set_value("status", status);
				frm.save();
			});
		}
	},
});
