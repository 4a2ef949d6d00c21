frappe.ui.form.on("Aether Agent Definition", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("New Instance"), () =>
				frappe.new_doc("Aether Agent Instance", { definition: frm.doc.name })
			);
		}
	},
});
