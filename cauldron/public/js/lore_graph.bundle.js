// Lore's knowledge graph in Desk: an entity's neighbourhood (cauldron.api.lore.neighbourhood) drawn
// with Cytoscape.js. Loaded with frappe.require("lore_graph.bundle.js"); the renderer is
// cauldron.lore.LoreGraph (and the module's export): new LoreGraph({ wrapper, entity }).
import cytoscape from "cytoscape";

// one colour per entity type (Lore Entity's entity_type options)
export const TYPE_COLOURS = {
	person: "#2490ef",
	organization: "#7c5cff",
	team: "#0ea5a4",
	product: "#e86c13",
	project: "#d1369b",
	concept: "#4f9d2d",
	technology: "#1f6feb",
	location: "#b7791f",
	event: "#e0245e",
	document: "#6b7280",
	other: "#9ca3af",
};
const DEPTHS = [1, 2, 3, 4, 5, 6];

const esc = (text) => frappe.utils.escape_html(text == null ? "" : String(text));
const short = (text, n = 28) =>
	text && text.length > n ? text.slice(0, n - 1) + "…" : text || "";

const TAU = 2 * Math.PI;
const RING = 130; // distance between rings, before the canvas is fitted
const SPACING = 90; // least distance between two entities of a ring

// A radial layout: the entity in the middle, depth d on ring d. Ring 1 is in an order that keeps
// related entities side by side; an entity further out sits at the mean angle of its neighbours
// on the ring inside it, pushed along its ring as little as keeps SPACING.
export function radial_positions(data, centre) {
	const depth = Object.fromEntries(data.nodes.map((n) => [n.name, n.depth]));
	const label = Object.fromEntries(data.nodes.map((n) => [n.name, n.entity_name || n.name]));
	const near = {};
	for (const e of data.edges) {
		(near[e.source] = near[e.source] || new Set()).add(e.target);
		(near[e.target] = near[e.target] || new Set()).add(e.source);
	}
	const rings = [];
	for (const n of data.nodes) (rings[n.depth] = rings[n.depth] || []).push(n.name);
	const angle = { [centre]: 0 };
	const position = { [centre]: { x: 0, y: 0 } };
	let radius = 0;
	rings.forEach((ring, d) => {
		if (!d || !ring) return;
		radius = Math.max(radius + RING, (ring.length * SPACING) / TAU);
		let placed;
		if (d === 1) {
			placed = order_ring(ring, near, label, centre).map((name, i) => [
				name,
				-Math.PI / 2 + (i * TAU) / ring.length,
			]);
		} else {
			const wanted = ring
				.map((name) => [
					name,
					mean_angle(
						[...(near[name] || [])]
							.filter((m) => depth[m] === d - 1)
							.map((m) => angle[m])
					),
				])
				.sort((a, b) => a[1] - b[1] || label[a[0]].localeCompare(label[b[0]]));
			const gap = Math.min(TAU / ring.length, SPACING / radius);
			placed = [];
			for (const [name, want] of wanted) {
				const previous = placed.length ? placed[placed.length - 1][1] : -Infinity;
				placed.push([name, Math.max(want, previous + gap)]);
			}
			// spilled past the first one round the circle: shift all back by half the overlap
			const overlap =
				placed.length > 1 ? placed[placed.length - 1][1] - (placed[0][1] + TAU - gap) : 0;
			if (overlap > 0) placed = placed.map(([name, a]) => [name, a - overlap / 2]);
		}
		for (const [name, a] of placed) {
			angle[name] = a;
			position[name] = { x: radius * Math.cos(a), y: radius * Math.sin(a) };
		}
	});
	return position;
}

function mean_angle(angles) {
	if (!angles.length) return 0;
	const x = angles.reduce((sum, a) => sum + Math.cos(a), 0);
	const y = angles.reduce((sum, a) => sum + Math.sin(a), 0);
	return Math.atan2(y, x);
}

// ring 1: start from the first by name; next, one related to the last directly, else through an
// entity further out, else the next by name
function order_ring(ring, near, label, centre) {
	const inner = new Set([centre, ...ring]);
	const left = [...ring].sort((a, b) => label[a].localeCompare(label[b]));
	const order = [left.shift()];
	const direct = (a, b) => Boolean(near[a] && near[a].has(b));
	const shared = (a, b) => [...(near[a] || [])].some((m) => !inner.has(m) && direct(b, m));
	while (left.length) {
		const last = order[order.length - 1];
		let i = left.findIndex((name) => direct(last, name));
		if (i < 0) i = left.findIndex((name) => shared(last, name));
		order.push(left.splice(Math.max(0, i), 1)[0]);
	}
	return order;
}

export class LoreGraph {
	// wrapper: element or jQuery; entity: a Lore Entity's name; depth: 1 to 6;
	// open(name): what clicking another entity does (default: open its form)
	constructor({ wrapper, entity, depth = 2, height = 460, open = null }) {
		this.$wrapper = $(wrapper);
		this.entity = entity;
		this.depth = depth;
		this.height = height;
		this.types = null; // relationship types asked for: null means every type
		this.seen_types = new Set();
		this.open = open || ((name) => frappe.set_route("Form", "Lore Entity", name));
		this.make();
		this.refresh();
	}

	make() {
		this.$wrapper.empty().addClass("lore-graph");
		this.$controls = $(`
			<div class="lore-graph-controls" style="display: flex; flex-wrap: wrap; align-items: center;
				gap: var(--margin-sm); margin-bottom: var(--margin-sm)">
				<label class="small text-muted" style="margin: 0">${__("Depth")}</label>
				<select class="form-control input-xs lore-graph-depth" style="width: auto">
					${DEPTHS.map((d) => `<option value="${d}">${d}</option>`).join("")}
				</select>
				<span class="small text-muted" style="margin-left: var(--margin-sm)">${__("Relationships")}</span>
				<div class="lore-graph-types" style="display: flex; flex-wrap: wrap; gap: 4px"></div>
				<div style="margin-left: auto; display: flex; gap: 4px">
					<button class="btn btn-xs btn-default lore-graph-zoom-in" title="${__("Zoom in")}">+</button>
					<button class="btn btn-xs btn-default lore-graph-zoom-out" title="${__("Zoom out")}">−</button>
					<button class="btn btn-xs btn-default lore-graph-fit">${__("Fit")}</button>
				</div>
			</div>`).appendTo(this.$wrapper);
		this.$canvas = $(`<div class="lore-graph-canvas"></div>`)
			.css({
				height: `${this.height}px`,
				border: "1px solid var(--border-color)",
				borderRadius: "var(--border-radius-md)",
				background: "var(--bg-color)",
			})
			.appendTo(this.$wrapper);
		this.$footer = $(`
			<div style="display: flex; flex-wrap: wrap; justify-content: space-between; gap: var(--margin-sm);
				margin-top: var(--margin-xs)">
				<div class="lore-graph-legend small" style="display: flex; flex-wrap: wrap; gap: 10px"></div>
				<div class="lore-graph-status small text-muted"></div>
			</div>`).appendTo(this.$wrapper);

		this.$controls
			.find(".lore-graph-depth")
			.val(String(this.depth))
			.on("change", (e) => {
				this.depth = Number(e.target.value);
				this.refresh();
			});
		this.$controls
			.find(".lore-graph-fit")
			.on("click", () => this.cy && this.cy.fit(undefined, 30));
		this.$controls.find(".lore-graph-zoom-in").on("click", () => this.zoom(1.25));
		this.$controls.find(".lore-graph-zoom-out").on("click", () => this.zoom(0.8));
		this.$controls.on("click", ".lore-graph-type", (e) =>
			this.toggle_type($(e.currentTarget).attr("data-type"))
		);
	}

	set_entity(entity) {
		if (entity === this.entity) return this.refresh();
		this.entity = entity;
		this.types = null;
		this.seen_types = new Set();
		return this.refresh();
	}

	zoom(factor) {
		if (!this.cy) return;
		this.cy.zoom({
			level: this.cy.zoom() * factor,
			renderedPosition: { x: this.$canvas.width() / 2, y: this.$canvas.height() / 2 },
		});
	}

	toggle_type(type) {
		const all = [...this.seen_types];
		let types = new Set(this.types || all);
		if (type === "__all__") types = new Set(all);
		else if (types.has(type)) types.delete(type);
		else types.add(type);
		// every type known is the same as no filter (and keeps types not seen yet)
		this.types = all.every((t) => types.has(t)) ? null : [...types];
		this.refresh();
	}

	status(text) {
		this.$footer.find(".lore-graph-status").html(text);
	}

	refresh() {
		if (!this.entity) return Promise.resolve();
		this.status(__("Loading…"));
		const args = { entity: this.entity, depth: this.depth };
		if (this.types) args.relationship_types = JSON.stringify(this.types);
		const asked = JSON.stringify(args);
		this.asked = asked;
		return frappe
			.call({ method: "cauldron.api.lore.neighbourhood", args, type: "GET" })
			.then((r) => {
				if (this.asked !== asked) return; // a newer question was asked meanwhile
				this.data = r.message || { nodes: [], edges: [], truncated: false };
				this.draw(this.data);
			})
			.catch(() => this.status(__("The neighbourhood could not be loaded.")));
	}

	render_types(edges) {
		edges.forEach((e) => this.seen_types.add(e.relationship_type));
		const counts = {};
		edges.forEach(
			(e) => (counts[e.relationship_type] = (counts[e.relationship_type] || 0) + 1)
		);
		const chosen = new Set(this.types || this.seen_types);
		const chips = [...this.seen_types].sort().map((t) => {
			const on = chosen.has(t);
			return `<button class="btn btn-xs ${on ? "btn-primary" : "btn-default"} lore-graph-type"
				data-type="${esc(t)}" title="${on ? __("Hide") : __("Show")} ${esc(t)}">${esc(
					t.replace(/_/g, " ")
				)}${counts[t] ? ` <span style="opacity: 0.75">${counts[t]}</span>` : ""}</button>`;
		});
		if (this.types) {
			chips.push(
				`<button class="btn btn-xs btn-link lore-graph-type" data-type="__all__">${__("All")}</button>`
			);
		}
		this.$controls
			.find(".lore-graph-types")
			.html(chips.join("") || `<span class="small text-muted">${__("none yet")}</span>`);
	}

	render_legend(nodes) {
		const kinds = [...new Set(nodes.map((n) => n.entity_type || "other"))].sort();
		this.$footer.find(".lore-graph-legend").html(
			kinds
				.map(
					(k) => `<span style="display: inline-flex; align-items: center; gap: 4px">
						<span style="width: 10px; height: 10px; border-radius: 50%;
							background: ${TYPE_COLOURS[k] || TYPE_COLOURS.other}"></span>${esc(__(k))}</span>`
				)
				.join("")
		);
	}

	elements(data) {
		const max_depth = Math.max(0, ...data.nodes.map((n) => n.depth));
		return [
			...data.nodes.map((n) => ({
				group: "nodes",
				data: {
					id: n.name,
					label: short(n.entity_name || n.name),
					full: n.entity_name || n.name,
					type: n.entity_type || "other",
					colour: TYPE_COLOURS[n.entity_type] || TYPE_COLOURS.other,
					depth: n.depth,
					ring: max_depth - n.depth,
				},
				classes: n.name === this.entity ? "centre" : "",
			})),
			...data.edges.map((e) => ({
				group: "edges",
				data: {
					id: e.name,
					source: e.source,
					target: e.target,
					label: (e.relationship_type || "").replace(/_/g, " "),
					width:
						1 +
						2.5 *
							(e.confidence == null ? 0.5 : Math.max(0, Math.min(1, e.confidence))),
					confidence: e.confidence,
				},
			})),
		];
	}

	style() {
		return [
			{
				selector: "node",
				style: {
					"background-color": "data(colour)",
					label: "data(label)",
					color: "#1f272e",
					"font-size": 13,
					"text-valign": "bottom",
					"text-margin-y": 5,
					"text-background-color": "#ffffff",
					"text-background-opacity": 0.85,
					"text-background-padding": 2,
					"text-background-shape": "roundrectangle",
					width: 24,
					height: 24,
					"border-width": 2,
					"border-color": "#ffffff",
				},
			},
			{
				selector: "node.centre",
				style: {
					width: 36,
					height: 36,
					"border-width": 4,
					"border-color": "#1f272e",
					"font-size": 15,
					"font-weight": "bold",
				},
			},
			{
				selector: "node.hover",
				style: { "border-color": "#1f272e", "underlay-opacity": 0 },
			},
			{
				selector: "edge",
				style: {
					width: "data(width)",
					"line-color": "#a3acb9",
					"target-arrow-color": "#a3acb9",
					"target-arrow-shape": "triangle",
					"arrow-scale": 0.9,
					"curve-style": "bezier",
					label: "data(label)",
					"font-size": 11,
					color: "#525f6b",
					"text-rotation": "autorotate",
					"text-background-color": "#ffffff",
					"text-background-opacity": 0.9,
					"text-background-padding": 1,
				},
			},
		];
	}

	draw(data) {
		this.render_types(data.edges);
		this.render_legend(data.nodes);
		if (this.cy) this.cy.destroy();
		this.cy = cytoscape({
			container: this.$canvas[0],
			elements: this.elements(data),
			style: this.style(),
			// rings by depth around the entity, each entity near those it was reached from
			layout: {
				name: "preset",
				positions: radial_positions(data, this.entity),
				padding: 30,
				animate: false,
			},
			minZoom: 0.2,
			maxZoom: 3,
			userZoomingEnabled: false, // the page scrolls; zoom with the buttons
			boxSelectionEnabled: false,
			autoungrabify: false,
		});
		this.widen();
		this.cy.on("tap", "node", (e) => {
			const name = e.target.id();
			if (name !== this.entity) this.open(name);
		});
		this.cy.on("mouseover", "node", (e) => {
			e.target.addClass("hover");
			this.$canvas.css("cursor", e.target.id() === this.entity ? "default" : "pointer");
			this.status(
				`${esc(e.target.data("full"))} · ${esc(__(e.target.data("type")))} · ${__(
					"depth {0}",
					[e.target.data("depth")]
				)}`
			);
		});
		this.cy.on("mouseout", "node", (e) => {
			e.target.removeClass("hover");
			this.$canvas.css("cursor", "default");
			this.status(this.summary(data));
		});
		this.status(this.summary(data));
		if (data.nodes.length <= 1) {
			this.status(
				this.types
					? __("No relationships of these types within {0} hops.", [this.depth])
					: __("No relationships yet: add one to see the graph.")
			);
		}
	}

	// the whole graph in view, never blown up past 1.1 (a few entities would fill the canvas)
	fit() {
		if (!this.cy) return;
		this.cy.fit(undefined, 30);
		if (this.cy.zoom() > 1.1) {
			this.cy.zoom(1.1);
			this.cy.center();
		}
	}

	// a wide canvas and a round layout: stretch it sideways (up to 1.8 times) so that it fills the
	// canvas and its labels grow, instead of fitting a small circle into the canvas' height
	widen() {
		const box = this.cy.nodes().boundingBox();
		const width = this.$canvas.width(),
			height = this.$canvas.height();
		const stretch =
			box.w && box.h && height ? Math.min(1.8, width / height / (box.w / box.h)) : 1;
		if (stretch > 1.05) {
			const middle = (box.x1 + box.x2) / 2;
			this.cy.nodes().positions((node) => ({
				x: middle + (node.position("x") - middle) * stretch,
				y: node.position("y"),
			}));
		}
		this.fit();
	}

	summary(data) {
		const text = __("{0} entities, {1} relationships within {2} hops", [
			data.nodes.length,
			data.edges.length,
			this.depth,
		]);
		return data.truncated ? `${text} · ${__("the nearest shown")}` : text;
	}

	resize() {
		if (this.cy) {
			this.cy.resize();
			this.fit();
		}
	}
}

export function render_lore_graph(options) {
	return new LoreGraph(options);
}

frappe.provide("cauldron.lore");
cauldron.lore.LoreGraph = LoreGraph;
cauldron.lore.render_graph = render_lore_graph;
