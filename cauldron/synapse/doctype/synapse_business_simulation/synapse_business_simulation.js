frappe.ui.form.on("Synapse Business Simulation", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
});
