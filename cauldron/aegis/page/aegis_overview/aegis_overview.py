"""Aegis Overview (Desk page /app/aegis-overview): cauldron.api.aegis.overview, open incidents by
severity, events over time (frappe.Chart), top sources and users."""
