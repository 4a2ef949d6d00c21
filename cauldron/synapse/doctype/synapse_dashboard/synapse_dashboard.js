frappe.ui.form.on("Synapse Dashboard", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("View"), () =>
				frappe.set_route("synapse-dashboard-view", frm.doc.name)
			);
		}
	},
});
