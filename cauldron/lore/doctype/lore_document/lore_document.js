frappe.ui.form.on("Lore Document", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
});
