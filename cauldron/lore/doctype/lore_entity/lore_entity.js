frappe.ui.form.on("Lore Entity", {
	refresh(frm) {
		if (frm.is_new()) {
			if (frm.lore_graph_section)
				frm.lore_graph_section.closest(".form-dashboard-section").hide();
			return;
		}
		frm.add_custom_button(__("Add Relationship"), () =>
			frappe.new_doc("Lore Relationship", { source_entity: frm.doc.name })
		);
		show_neighbourhood(frm);
	},
});

// The entity's neighbourhood as a graph (cauldron/public/js/lore_graph.bundle.js): one dashboard
// section per form, drawn again for each entity the form shows.
function show_neighbourhood(frm) {
	if (!frm.lore_graph_section) {
		frm.lore_graph_section = frm.dashboard.add_section(
			'<div class="lore-entity-graph"></div>',
			__("Neighbourhood")
		);
	}
	frm.lore_graph_section.closest(".form-dashboard-section").show();
	frm.dashboard.show();
	frappe.require("lore_graph.bundle.js", () => {
		if (frm.lore_graph) {
			frm.lore_graph.set_entity(frm.doc.name);
		} else {
			frm.lore_graph = new cauldron.lore.LoreGraph({
				wrapper: frm.lore_graph_section.find(".lore-entity-graph"),
				entity: frm.doc.name,
			});
		}
	});
}
