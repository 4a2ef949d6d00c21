frappe.ui.form.on("Cauldron Settings", {
	refresh(frm) {
		frm.add_custom_button(__("Capabilities"), () => {
			frappe.call("cauldron.api.admin.capabilities_report").then((r) => {
				frappe.msgprint({
					title: __("Database capabilities"),
					message: `<pre>${frappe.utils.escape_html(r.message.report)}</pre>`,
					wide: true,
				});
			});
		});
	},
});
