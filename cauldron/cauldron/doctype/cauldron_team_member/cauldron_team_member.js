frappe.ui.form.on("Cauldron Team Member", {
	setup(frm) {
		frm.set_query("user", () => ({ filters: { enabled: 1 } }));
	},
});
