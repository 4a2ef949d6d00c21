frappe.ui.form.on("Lore Skill Profile", {
	setup(frm) {
		frm.set_query("user", () => ({ filters: { enabled: 1 } }));
	},
});
