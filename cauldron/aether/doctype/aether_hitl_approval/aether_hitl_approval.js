frappe.ui.form.on("Aether HITL Approval", {
	refresh(frm) {
		if (frm.is_new() || frm.doc.status !== "pending") {
			return;
		}
		for (const [label, status] of [
			[__("Approve"), "approved"],
			[__("Reject"), "rejected"],
		]) {
			frm.add_custom_button(label, () => {
				frm.set_value("status", status);
				frm.save();
			});
		}
	},
});
