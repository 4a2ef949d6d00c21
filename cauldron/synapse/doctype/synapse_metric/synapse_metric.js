frappe.ui.form.on("Synapse Metric", {
	refresh(frm) {
		// Rows of a real table, written elsewhere: the form only shows them.
		frm.set_read_only();
		frm.disable_save();
	},
});
