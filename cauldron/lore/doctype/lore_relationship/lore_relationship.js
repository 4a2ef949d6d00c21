frappe.ui.form.on("Lore Relationship", {
	setup(frm) {
		// An edge joins two entities: do not offer the source as its own target.
		frm.set_query("target_entity", () => ({
			filters: { name: ["!=", frm.doc.source_entity || ""] },
		}));
	},
});
