frappe.ui.form.on("Aegis Security Incident", {
	setup(frm) {
		frm.set_query("assigned_to", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		// a playbook step waiting for approval: approve or reject it from here
		let state = frm.doc.response_steps;
		if (typeof state === "string") {
			try {
				state = JSON.parse(state || "{}");
			} catch (e) {
				state = {};
			}
		}
		for (const step of (state && state.steps) || []) {
			if (step.status !== "waiting_approval" || !step.approval) continue;
			const label = __("Step {0}", [step.index + 1]);
			const answer = (decision) =>
				frappe.prompt(
					{ fieldname: "notes", fieldtype: "Small Text", label: __("Notes") },
					(values) =>
						frappe.call({
							method: "cauldron.api.aegis.respond_step",
							args: {
								incident: frm.doc.name,
								approval: step.approval,
								decision,
								notes: values.notes || null,
							},
							freeze: true,
							callback: () => frm.reload_doc(),
						}),
					__("{0} {1}: {2}", [decision === "approve" ? __("Approve") : __("Reject"), label, step.text])
				);
			frm.add_custom_button(__("Approve {0}", [label]), () => answer("approve"), __("Response"));
			frm.add_custom_button(__("Reject {0}", [label]), () => answer("reject"), __("Response"));
		}
	},
});
