// Synapse Dashboard view: a Synapse Dashboard's components drawn with Frappe's charts.
// /app/synapse-dashboard-view/<dashboard>; data from cauldron.api.synapse.dashboard_data.
frappe.pages["synapse-dashboard-view"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Synapse Dashboard"),
		single_column: true,
	});
	wrapper.synapse_dashboard = new SynapseDashboardView(page, wrapper);
};

frappe.pages["synapse-dashboard-view"].on_page_show = function (wrapper) {
	wrapper.synapse_dashboard.show(frappe.get_route()[1]);
};

const SYNAPSE_STATE_COLORS = { ok: "green", warning: "orange", critical: "red" };

class SynapseDashboardView {
	constructor(page, wrapper) {
		this.page = page;
		this.wrapper = wrapper;
		this.timers = [];
		this.charts = {};
		this.$body = $('<div class="synapse-dashboard"></div>').appendTo(page.main);
		page.set_primary_action(__("Refresh"), () => this.load(), "refresh");
		page.add_inner_button(__("Edit Dashboard"), () => {
			if (this.name) frappe.set_route("Form", "Synapse Dashboard", this.name);
		});
		page.add_inner_button(__("All Dashboards"), () =>
			frappe.set_route("List", "Synapse Dashboard")
		);
	}

	show(name) {
		if (!name) {
			this.name = null;
			this.clear_timers();
			this.page.set_title(__("Synapse Dashboard"));
			this.$body.html(this.note(__("Open a dashboard from the Synapse Dashboard list.")));
			return;
		}
		if (name !== this.name) {
			this.name = name;
			this.$body.html(this.note(__("Loading…")));
		}
		this.load();
	}

	note(text, cls = "text-muted") {
		return `<div class="${cls}" style="padding: var(--padding-md)">${text}</div>`;
	}

	clear_timers() {
		this.timers.forEach((t) => clearInterval(t));
		this.timers = [];
	}

	visible() {
		return (
			frappe.get_route()[0] === "synapse-dashboard-view" &&
			frappe.get_route()[1] === this.name
		);
	}

	load() {
		const name = this.name;
		if (!name) return;
		return frappe
			.call({
				method: "cauldron.api.synapse.dashboard_data",
				args: { dashboard: name },
				error: () => {
					this.clear_timers();
					this.$body.html(
						this.note(__("This dashboard cannot be shown."), "text-danger")
					);
				},
			})
			.then((r) => {
				if (!r || !r.message || name !== this.name) return;
				this.render(r.message);
			});
	}

	render(data) {
		this.clear_timers();
		this.charts = {};
		this.page.set_title(data.dashboard_name);
		this.page.set_indicator(
			data.is_public ? __("Public") : __("Private"),
			data.is_public ? "blue" : "gray"
		);
		this.$body.empty();
		if (data.description) {
			$(`<p class="text-muted">${frappe.utils.escape_html(data.description)}</p>`).appendTo(
				this.$body
			);
		}
		const $row = $('<div class="row"></div>').appendTo(this.$body);
		if (!data.components.length) {
			$row.html(this.note(__("This dashboard has no active components yet.")));
		}
		data.components.forEach((c) => {
			const $col = $(
				`<div class="col-md-${c.columns} synapse-component" data-component="${c.name}"
					style="margin-bottom: var(--margin-lg)"></div>`
			).appendTo($row);
			this.draw($col, c);
			if (c.refresh_seconds) {
				this.timers.push(
					setInterval(() => this.reload(c.name), Math.max(c.refresh_seconds, 60) * 1000)
				);
			}
		});
		$(
			`<div class="text-muted small synapse-generated">${__("Updated {0}", [
				frappe.datetime.comment_when(data.generated_at),
			])}</div>`
		).appendTo(this.$body);
	}

	reload(component) {
		if (!this.visible() || document.hidden) return;
		frappe
			.call({
				method: "cauldron.api.synapse.dashboard_data",
				args: { dashboard: this.name, component },
				type: "POST",
			})
			.then((r) => {
				const c = r && r.message && r.message.components[0];
				if (!c) return;
				const $col = this.$body.find(`[data-component="${c.name}"]`);
				$col.empty();
				this.draw($col, c);
			});
	}

	card($col, c) {
		const $card = $(`
			<div class="frappe-card" style="padding: var(--padding-md); height: 100%">
				<div class="flex justify-between align-center" style="margin-bottom: var(--margin-sm)">
					<div class="text-muted font-weight-bold synapse-title"></div>
					<div class="synapse-state"></div>
				</div>
				<div class="synapse-content"></div>
			</div>`).appendTo($col);
		$card.find(".synapse-title").text(c.title);
		if (c.state) {
			$card
				.find(".synapse-state")
				.html(
					`<span class="indicator-pill ${SYNAPSE_STATE_COLORS[c.state]}">${__(
						c.state
					)}</span>`
				);
		}
		return $card.find(".synapse-content");
	}

	draw($col, c) {
		const $content = this.card($col, c);
		if (c.error) {
			$content.html(this.note(frappe.utils.escape_html(c.error)));
			return;
		}
		if (c.component_type === "text") {
			$content.html(`<div>${frappe.utils.escape_html(c.text || "")}</div>`);
		} else if (c.component_type === "kpi" || c.component_type === "gauge") {
			this.number_card($content, c);
		} else if (c.component_type === "table") {
			this.table($content, c);
		} else {
			this.chart($content, c);
		}
	}

	format(value, metric) {
		if (value === null || value === undefined) return "–";
		if (metric && metric.is_currency && metric.currency)
			return format_currency(value, metric.currency);
		const text = format_number(value, null, Math.abs(value) >= 100 ? 0 : 2);
		if (metric && metric.is_percentage) return `${text}%`;
		return metric && metric.unit ? `${text} ${frappe.utils.escape_html(metric.unit)}` : text;
	}

	label(iso, interval) {
		const m = moment(iso);
		if (!interval || /minute|hour/.test(interval)) return m.format("DD MMM HH:mm");
		if (/month/.test(interval)) return m.format("MMM YYYY");
		return m.format("DD MMM");
	}

	number_card($content, c) {
		const m = c.metric;
		const value = c.value;
		const color = c.state ? SYNAPSE_STATE_COLORS[c.state] : "";
		let html = `<div class="synapse-number" style="font-size: 2rem; font-weight: 600"
			data-state="${c.state || ""}">${this.format(value, m)}</div>`;
		if (c.previous !== null && c.previous !== undefined && value !== null) {
			const delta = value - c.previous;
			const arrow = delta > 0 ? "↑" : delta < 0 ? "↓" : "→";
			html += `<div class="text-muted small">${arrow} ${this.format(
				Math.abs(delta),
				m
			)} ${__("since the previous {0}", [c.series.interval])}</div>`;
		}
		if (m.target !== null && m.target !== undefined) {
			const share = m.target ? (100 * value) / m.target : null;
			html += `<div class="synapse-target" style="margin-top: var(--margin-sm)">${__(
				"Target"
			)}:
				<b>${this.format(m.target, m)}</b>${
				share !== null && value !== null ? ` · ${format_number(share, null, 0)}%` : ""
			}</div>`;
			if (c.component_type === "gauge" && share !== null && value !== null) {
				html += `<div class="progress" style="margin-top: var(--margin-sm); height: 8px">
					<div class="progress-bar ${
						color
							? "bg-" +
							  (color === "green"
									? "success"
									: color === "red"
									? "danger"
									: "warning")
							: ""
					}"
						style="width: ${Math.max(0, Math.min(100, share))}%"></div></div>`;
			}
		}
		$content.html(html);
	}

	table($content, c) {
		const m = c.metric;
		const rows = (c.rows || [])
			.map(
				([time, value]) =>
					`<tr><td>${this.label(
						time,
						c.series.interval
					)}</td><td class="text-right">${this.format(value, m)}</td></tr>`
			)
			.join("");
		$content.html(`
			<div style="max-height: 320px; overflow-y: auto">
			<table class="table table-sm synapse-table">
				<thead><tr><th>${__("Time")}</th><th class="text-right">${frappe.utils.escape_html(
			m.metric_name
		)}</th></tr></thead>
				<tbody>${rows || `<tr><td colspan="2" class="text-muted">${__("No values")}</td></tr>`}</tbody>
			</table></div>`);
	}

	chart($content, c) {
		const points = c.series.points;
		const labels = points.map((p) => this.label(p[0], c.series.interval));
		// A bucket without points is drawn at the previous value on lines, as nothing on bars.
		const bar = c.chart_type === "bar";
		let last = points.find((p) => p[1] !== null);
		last = last ? last[1] : 0;
		const actual = points.map((p) => {
			if (p[1] === null) return bar ? 0 : last;
			last = p[1];
			return p[1];
		});
		const datasets = [];
		const forecast = c.forecast;
		const lastTime = points.length ? points[points.length - 1][0] : null;
		const ahead = forecast
			? forecast.points.filter((p) => !lastTime || moment(p.time).isAfter(moment(lastTime)))
			: [];
		if (ahead.length) {
			const level = (forecast.levels || [])[0];
			ahead.forEach((p) => labels.push(this.label(p.time, c.series.interval)));
			if (bar) {
				datasets.push({
					name: c.metric.metric_name,
					values: actual.concat(ahead.map(() => 0)),
					chartType: "bar",
				});
				datasets.push({
					name: __("Forecast ({0})", [forecast.method || forecast.model]),
					values: actual.map(() => 0).concat(ahead.map((p) => p.mean)),
					chartType: "bar",
				});
			} else {
				if (level) {
					datasets.push({
						name: __("{0}% low", [level]),
						values: actual.concat(ahead.map((p) => p[`lo_${level}`])),
					});
					datasets.push({
						name: __("{0}% high", [level]),
						values: actual.concat(ahead.map((p) => p[`hi_${level}`])),
					});
				}
				datasets.push({
					name: __("{0}, then forecast", [c.metric.metric_name]),
					values: actual.concat(ahead.map((p) => p.mean)),
				});
			}
		} else {
			datasets.push({ name: c.metric.metric_name, values: actual });
		}
		const m = c.metric;
		const markers = [];
		[
			["target", __("Target")],
			["warning", __("Warning")],
			["critical", __("Critical")],
		].forEach(([key, label]) => {
			if (m[key] !== null && m[key] !== undefined) {
				markers.push({ label, value: m[key], options: { labelPos: "left" } });
			}
		});
		const $chart = $('<div class="synapse-chart"></div>').appendTo($content);
		const colors =
			datasets.length === 3 ? ["light-blue", "light-blue", "blue"] : ["blue", "orange"];
		this.charts[c.name] = new frappe.Chart($chart[0], {
			type: bar ? "bar" : "line",
			data: { labels, datasets, yMarkers: markers.length ? markers : undefined },
			height: 240,
			colors,
			axisOptions: { xIsSeries: 1, shortenYAxisNumbers: 1 },
			lineOptions: { hideDots: 1, regionFill: c.chart_type === "area" ? 1 : 0 },
			// bars: the actual and forecast bars never share a bucket; stacked, each bucket has its own width
			barOptions: { stacked: bar ? 1 : 0 },
			tooltipOptions: { formatTooltipY: (v) => this.format(v, m) },
		});
		if (ahead.length) {
			const perf = forecast.performance || {};
			let note = __("Forecast from {0}: {1}", [
				this.label(ahead[0].time, c.series.interval),
				frappe.utils.escape_html(forecast.method || forecast.model),
			]);
			if (perf.mase !== null && perf.mase !== undefined) {
				note +=
					"; " +
					__("backtest MAPE {0}%, MASE {1} (seasonal naive {2})", [
						format_number(perf.mape, null, 1),
						format_number(perf.mase, null, 2),
						format_number((perf.seasonal_naive || {}).mase, null, 2),
					]);
			}
			$(`<div class="text-muted small">${note}</div>`).appendTo($content);
		}
	}
}
