frappe.ui.form.on("Cauldron Storage Bucket", {
	setup(frm) {
		frm.set_query("bucket_owner", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (!frm.is_new()) {
			frm.add_custom_button(__("Add Object"), () =>
				frappe.new_doc("Cauldron Storage Object", { bucket: frm.doc.name })
			);
		}
	},
});
