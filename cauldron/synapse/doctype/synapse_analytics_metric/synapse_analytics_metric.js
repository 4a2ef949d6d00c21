frappe.ui.form.on("Synapse Analytics Metric", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("New Forecast"), () =>
				frappe.new_doc("Synapse Forecast", { metric: frm.doc.name })
			);
		}
	},
});
