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
		frm.add_custom_button(__("Test Embedding Provider"), () => {
			if (frm.is_dirty()) {
				frappe.msgprint(__("Save the settings first: the test uses the saved provider."));
				return;
			}
			frappe.call({ method: "cauldron.api.lore.test_provider", type: "POST" }).then((r) => {
				const m = r.message;
				frappe.msgprint(
					__("{0} answered with a {1}-dimensional vector in {2} ms.", [
						frappe.utils.escape_html(m.model),
						m.dimension,
						m.milliseconds,
					]),
					__("Embedding provider works")
				);
			});
		});
		frm.add_custom_button(__("Lore Embedding Queue"), () => frappe.set_route("lore-queue"));
	},
});
