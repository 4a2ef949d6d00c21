frappe.ui.form.on("Cauldron Auth User Mapping", {
	setup(frm) {
		frm.set_query("user", () => ({ filters: { enabled: 1 } }));
	},
});
