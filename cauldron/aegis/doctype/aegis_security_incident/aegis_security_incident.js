frappe.ui.form.on("Aegis Security Incident", {
	setup(frm) {
		frm.set_query("assigned_to", () => ({ filters: { enabled: 1 } }));
	},
});
