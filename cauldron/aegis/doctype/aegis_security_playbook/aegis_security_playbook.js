frappe.ui.form.on("Aegis Security Playbook", {
	refresh(frm) {
		if (frm.doc.is_automated && !frm.doc.requires_approval) {
			frm.set_intro(__("This playbook runs its steps without asking anyone."), "orange");
		}
	},
});
