frappe.ui.form.on("Synapse Dashboard", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
});
