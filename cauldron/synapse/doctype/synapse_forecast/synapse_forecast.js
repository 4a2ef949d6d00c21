frappe.ui.form.on("Synapse Forecast", {
	refresh(frm) {
		if (frm.doc.metric) {
			frm.add_custom_button(__("Metric"), () =>
				frappe.set_route("Form", "Synapse Analytics Metric", frm.doc.metric)
			);
		}
	},
});
