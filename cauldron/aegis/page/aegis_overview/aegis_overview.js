// Aegis Overview: open incidents by severity, security events over time, top sources and users.
frappe.pages["aegis-overview"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Aegis Overview"),
		single_column: true,
	});
	new AegisOverview(page);
};

const SEVERITY_COLORS = { critical: "red", high: "orange", medium: "yellow", low: "blue", info: "gray" };

class AegisOverview {
	constructor(page) {
		this.page = page;
		page.set_primary_action(__("Refresh"), () => this.load(), "refresh");
		page.set_secondary_action(__("Incidents"), () =>
			frappe.set_route("List", "Aegis Security Incident", { status: "open" })
		);
		this.days = page.add_field({
			fieldname: "days",
			fieldtype: "Select",
			label: __("Period"),
			options: [
				{ value: "1", label: __("Last 24 hours") },
				{ value: "7", label: __("Last 7 days") },
				{ value: "30", label: __("Last 30 days") },
				{ value: "90", label: __("Last 90 days") },
			],
			default: "7",
			change: () => this.load(),
		});
		this.$body = $(`<div class="aegis-overview">
			<div class="aegis-severity row" style="margin-bottom: var(--margin-md)"></div>
			<div class="frappe-card" style="padding: var(--padding-md); margin-bottom: var(--margin-md)">
				<div class="text-muted small">${__("Security events")}</div>
				<div class="aegis-chart"></div>
			</div>
			<div class="row">
				<div class="col-md-4"><div class="frappe-card" style="padding: var(--padding-md)">
					<div class="text-muted small">${__("Top sources")}</div><div class="aegis-sources"></div></div></div>
				<div class="col-md-4"><div class="frappe-card" style="padding: var(--padding-md)">
					<div class="text-muted small">${__("Top users")}</div><div class="aegis-users"></div></div></div>
				<div class="col-md-4"><div class="frappe-card" style="padding: var(--padding-md)">
					<div class="text-muted small">${__("Latest open incidents")}</div><div class="aegis-incidents"></div></div></div>
			</div>
		</div>`).appendTo(page.main);
		this.load();
	}

	load() {
		frappe
			.call("cauldron.api.aegis.overview", { days: this.days.get_value() || 7 })
			.then((r) => this.render(r.message));
	}

	render(data) {
		const $severity = this.$body.find(".aegis-severity").empty();
		for (const [severity, count] of Object.entries(data.open_incidents)) {
			$(`<div class="col-sm" style="cursor: pointer">
				<div class="frappe-card" style="padding: var(--padding-md)">
					<span class="indicator-pill ${SEVERITY_COLORS[severity]}">${__(severity)}</span>
					<div class="h3" style="margin-top: var(--margin-sm)">${count}</div>
					<div class="text-muted small">${__("open incidents")}</div>
				</div></div>`)
				.on("click", () =>
					frappe.set_route("List", "Aegis Security Incident", {
						severity,
						status: ["in", ["open", "investigating", "contained"]],
					})
				)
				.appendTo($severity);
		}
		const $chart = this.$body.find(".aegis-chart").empty();
		if (data.events.length) {
			const label = (b) => (data.unit === "hour" ? b.slice(5, 16) : b.slice(0, 10));
			new frappe.Chart($chart[0], {
				type: "bar",
				height: 240,
				colors: ["#7cd6fd", "#ff5858", "#ffa00a"],
				data: {
					labels: data.events.map((e) => label(e.bucket)),
					datasets: [
						{ name: __("Events"), values: data.events.map((e) => e.events) },
						{ name: __("In incidents"), values: data.events.map((e) => e.incident_events) },
						{ name: __("High or critical"), values: data.events.map((e) => e.high) },
					],
				},
				axisOptions: { xIsSeries: 1 },
			});
		} else {
			$chart.html(`<div class="text-muted">${__("No security events in this period.")}</div>`);
		}
		const table = (rows, cells) =>
			rows.length
				? `<table class="table table-condensed small">${rows
						.map((r) => `<tr>${cells(r).map((c) => `<td>${c}</td>`).join("")}</tr>`)
						.join("")}</table>`
				: `<div class="text-muted small">${__("None")}</div>`;
		this.$body
			.find(".aegis-sources")
			.html(table(data.top_sources, (r) => [frappe.utils.escape_html(r.source), r.events]));
		this.$body
			.find(".aegis-users")
			.html(
				table(data.top_users, (r) => [
					frappe.utils.escape_html(r.user),
					r.events,
					r.failed_logins ? `<span class="text-danger">${r.failed_logins} ${__("failed logins")}</span>` : "",
				])
			);
		this.$body.find(".aegis-incidents").html(
			table(data.latest_incidents, (r) => [
				`<a href="/app/aegis-security-incident/${encodeURIComponent(r.name)}">${frappe.utils.escape_html(
					r.title
				)}</a>`,
				`<span class="indicator-pill ${SEVERITY_COLORS[r.severity] || "gray"}">${__(r.severity)}</span>`,
				r.event_count || "",
			])
		);
	}
}
