frappe.ui.form.on("Cauldron Team", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Add Member"), () =>
				frappe.new_doc("Cauldron Team Member", { team: frm.doc.name })
			);
		}
	},
});
