frappe.ui.form.on("Synapse Forecast", {
	refresh(frm) {
		if (frm.doc.metric) {
			frm.add_custom_button(__("Metric"), () =>
				frappe.set_route("Form", "Synapse Analytics Metric", frm.doc.metric)
			);
		}
		if (!frm.is_new() && frm.perm[0] && frm.perm[0].write) {
			frm.add_custom_button(__("Refresh Forecast"), () =>
				frappe
					.call("cauldron.api.synapse.run_forecast", { forecast: frm.doc.name })
					.then(() => {
						frappe.show_alert({
							message: __("Fitting in the background"),
							indicator: "blue",
						});
						frm.reload_doc();
					})
			);
		}
		if (frm.doc.status === "failed" && frm.doc.last_error) {
			frm.dashboard.set_headline(
				`<span class="text-danger">${frappe.utils.escape_html(frm.doc.last_error)}</span>`
			);
		}
		frm.trigger("draw_forecast");
	},
	draw_forecast(frm) {
		const wrapper = frm.get_field("forecast_chart").$wrapper.empty();
		let data = frm.doc.forecast_data;
		if (typeof data === "string") data = data ? JSON.parse(data) : {};
		const points = (data && data.points) || [];
		if (!points.length) return;
		const level = (data.levels || [])[0];
		const datasets = [];
		if (level) {
			datasets.push({
				name: __("{0}% low", [level]),
				values: points.map((p) => p[`lo_${level}`]),
			});
			datasets.push({
				name: __("{0}% high", [level]),
				values: points.map((p) => p[`hi_${level}`]),
			});
		}
		datasets.push({
			name: __("Forecast ({0})", [data.method || data.model]),
			values: points.map((p) => p.mean),
		});
		new frappe.Chart(wrapper[0], {
			type: "line",
			data: {
				labels: points.map((p) => {
					if (!p.time) return p.step;
					const moment_ = moment(p.time);
					// whole days: the date alone
					return moment_.utc().format("HH:mm:ss") === "00:00:00"
						? moment_.utc().format("DD MMM")
						: moment_.format("DD MMM HH:mm");
				}),
				datasets,
			},
			height: 220,
			colors: datasets.length === 3 ? ["light-blue", "light-blue", "blue"] : ["blue"],
			axisOptions: { xIsSeries: 1, shortenYAxisNumbers: 1 },
			lineOptions: { hideDots: 1 },
		});
	},
});
