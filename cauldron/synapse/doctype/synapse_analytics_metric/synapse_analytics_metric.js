frappe.ui.form.on("Synapse Analytics Metric", {
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("New Forecast"), () =>
				frappe.new_doc("Synapse Forecast", { metric: frm.doc.name })
			);
			if (frm.doc.query_definition) {
				frm.add_custom_button(__("Evaluate Now"), () =>
					frappe
						.call({
							method: "cauldron.api.synapse.evaluate_metric",
							args: { metric: frm.doc.name },
							freeze: true,
						})
						.then(({ message }) => {
							if (message.error) {
								frappe.msgprint({ title: __("Not evaluated"), message: message.error, indicator: "red" });
							} else {
								frappe.show_alert({
									message: __("{0}: {1}", [message.value, message.state]),
									indicator: { ok: "green", warning: "orange", critical: "red" }[message.state],
								});
							}
							frm.reload_doc();
						})
				);
			}
		}
		const colours = { ok: "green", warning: "orange", critical: "red" };
		if (frm.doc.alert_state) {
			frm.dashboard.set_headline_alert(
				`<span class="indicator ${colours[frm.doc.alert_state]}">${__(frm.doc.alert_state)}</span>` +
					(frm.doc.last_error ? ` ${frappe.utils.escape_html(frm.doc.last_error)}` : "")
			);
		}
	},
});
