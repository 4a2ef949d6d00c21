frappe.ui.form.on("Aether Agent Instance", {
	setup(frm) {
		frm.set_query("current_task", () => ({ filters: { assigned_to: frm.doc.name } }));
	},
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Interactions"), () =>
				frappe.set_route("List", "Aether Agent Interaction", { agent_instance_id: frm.doc.name })
			);
		}
	},
});
