frappe.ui.form.on("Aether Agent Task", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (!frm.is_new() && frm.doc.requires_approval && !frm.doc.approved_by) {
			frm.add_custom_button(__("Request Approval"), () =>
				frappe.new_doc("Aether HITL Approval", {
					task: frm.doc.name,
					approval_type: "task_execution",
					description: frm.doc.task_name,
				})
			);
		}
	},
});
