frappe.ui.form.on("Synapse Business Simulation", {
	setup(frm) {
		frm.set_query("created_by", () => ({ filters: { enabled: 1 } }));
	},
	refresh(frm) {
		if (!frm.is_new() && frm.perm[0] && frm.perm[0].write) {
			frm.add_custom_button(__("Run Simulation"), () => {
				frappe.prompt(
					[
						{
							fieldname: "seed",
							fieldtype: "Int",
							label: __("Seed"),
							description: __(
								"The same seed gives the same results; empty: the model's seed or a new one."
							),
						},
					],
					(values) =>
						frappe
							.call("cauldron.api.synapse.run_simulation", {
								simulation: frm.doc.name,
								seed:
									values.seed === undefined || values.seed === null
										? ""
										: values.seed,
							})
							.then(() => {
								frappe.show_alert({
									message: __("Running in the background"),
									indicator: "blue",
								});
								frm.reload_doc();
							}),
					__("Run Simulation"),
					__("Run")
				);
			});
		}
		if (frm.doc.status === "failed" && frm.doc.last_error) {
			frm.dashboard.set_headline(
				`<span class="text-danger">${frappe.utils.escape_html(frm.doc.last_error)}</span>`
			);
		}
		frm.trigger("draw_results");
	},
	draw_results(frm) {
		const $wrapper = frm.get_field("results_chart").$wrapper.empty();
		let results = frm.doc.results;
		if (typeof results === "string") results = results ? JSON.parse(results) : null;
		if (!results || !results.results || !results.outputs) return;
		const scenarios = results.scenarios || Object.keys(results.results);
		$wrapper.append(
			`<div class="text-muted small">${__("{0} draws, seed {1}", [
				format_number(results.iterations, null, 0),
				results.seed,
			])}</div>`
		);
		results.outputs.forEach((output) => {
			const $block =
				$(`<div class="synapse-simulation-output" style="margin-top: var(--margin-md)">
				<div class="font-weight-bold">${frappe.utils.escape_html(output)}</div>
				<div class="synapse-simulation-chart"></div>
				<table class="table table-sm"><thead><tr><th>${__("Scenario")}</th>
					<th class="text-right">p5</th><th class="text-right">p50</th>
					<th class="text-right">p95</th><th class="text-right">${__("Mean")}</th></tr></thead>
				<tbody></tbody></table></div>`).appendTo($wrapper);
			const stats = scenarios.map((s) => results.results[s][output]);
			const fmt = (v) => format_number(v, null, Math.abs(v) >= 100 ? 0 : 3);
			scenarios.forEach((s, i) => {
				const st = stats[i];
				$block.find("tbody").append(
					`<tr><td>${frappe.utils.escape_html(s)}</td><td class="text-right">${fmt(
						st.p5
					)}</td>
					<td class="text-right">${fmt(st.p50)}</td><td class="text-right">${fmt(st.p95)}</td>
					<td class="text-right">${fmt(st.mean)}</td></tr>`
				);
			});
			new frappe.Chart($block.find(".synapse-simulation-chart")[0], {
				data: {
					labels: scenarios,
					datasets: [
						{ name: "p5", values: stats.map((st) => st.p5), chartType: "bar" },
						{ name: "p50", values: stats.map((st) => st.p50), chartType: "bar" },
						{ name: "p95", values: stats.map((st) => st.p95), chartType: "bar" },
						{
							name: __("Mean"),
							values: stats.map((st) => st.mean),
							chartType: "line",
						},
					],
				},
				type: "axis-mixed",
				height: 220,
				colors: ["light-blue", "blue", "purple", "orange"],
				axisOptions: { shortenYAxisNumbers: 1 },
			});
		});
	},
});
