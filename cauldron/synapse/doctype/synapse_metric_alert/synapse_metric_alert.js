frappe.ui.form.on("Synapse Metric Alert", {
	refresh(frm) {
		frm.disable_save();
	},
});
