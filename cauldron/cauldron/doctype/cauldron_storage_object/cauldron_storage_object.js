frappe.ui.form.on("Cauldron Storage Object", {
	setup(frm) {
		frm.set_query("object_owner", () => ({ filters: { enabled: 1 } }));
	},
});
