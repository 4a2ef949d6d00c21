frappe.ui.form.on("Cauldron Organization", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Add Team"), () =>
				frappe.new_doc("Cauldron Team", { organization: frm.doc.name })
			);
		}
	},
});
