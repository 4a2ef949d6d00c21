frappe.ui.form.on("Aegis Threat", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Open Incident"), () =>
				frappe.new_doc("Aegis Security Incident", {
					title: frm.doc.threat_name,
					severity: frm.doc.severity,
					related_threats: JSON.stringify({ threats: [frm.doc.name] }),
				})
			);
		}
	},
});
