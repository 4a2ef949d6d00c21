frappe.ui.form.on("Lore Knowledge Source", {
	refresh(frm) {
		if (!frm.doc.is_active) {
			frm.set_intro(__("This source is inactive: it is not synced."), "orange");
		}
	},
});
