frappe.ui.form.on("Lore Entity", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Add Relationship"), () =>
				frappe.new_doc("Lore Relationship", { source_entity: frm.doc.name })
			);
		}
	},
});
