// Lore Knowledge Source: its sync status (documents, chunks, pending, failed, last error) and Sync Now.
const SYNCED_TYPES = ["DocType", "File", "URL"];

frappe.ui.form.on("Lore Knowledge Source", {
	refresh(frm) {
		if (!frm.doc.is_active) {
			frm.set_intro(__("This source is inactive: it is not synced."), "orange");
		}
		const synced = SYNCED_TYPES.includes(frm.doc.source_type);
		frm.toggle_display(["status_section", "status_html"], synced && !frm.is_new());
		if (!synced || frm.is_new()) {
			return;
		}
		if (frm.doc.is_active && frm.perm[0] && frm.perm[0].write) {
			frm.add_custom_button(__("Sync Now"), () =>
				frappe
					.call({
						method: "cauldron.lore.sync.sync_now",
						args: { source: frm.doc.name },
						freeze: true,
					})
					.then(() => {
						frappe.show_alert({ message: __("Sync queued"), indicator: "blue" });
						setTimeout(() => frm.reload_doc(), 5000);
					})
			);
		}
		lore_source_status(frm);
	},
});

function lore_source_status(frm) {
	frappe
		.call({ method: "cauldron.lore.sync.source_status", args: { source: frm.doc.name } })
		.then((r) => {
			const s = r.message || {};
			const cell = (label, value, color) =>
				`<div class="col-xs-3"><div class="text-muted small">${label}</div>
				<div class="h4 ${color || ""}">${value === null || value === undefined ? "–" : value}</div></div>`;
			const documents = `/app/lore-document?source_type=knowledge_source`;
			frm.get_field("status_html").$wrapper.html(`
				<div class="row">
					${cell(`<a href="${documents}">${__("Documents")}</a>`, s.documents)}
					${cell(__("Chunks"), s.chunks)}
					${cell(__("Pending"), s.pending, s.pending ? "text-warning" : "")}
					${cell(__("Failed"), s.failed, s.failed ? "text-danger" : "")}
				</div>
				${
					s.failed
						? `<div class="small text-muted">${__(
								"Failed documents are listed, with their errors and Retry, in"
						  )} <a href="/app/lore-queue">${__("Lore Embedding Queue")}</a></div>`
						: ""
				}`);
		});
}
