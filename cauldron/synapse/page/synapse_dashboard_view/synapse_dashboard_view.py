"""Synapse Dashboard view (Desk page /app/synapse-dashboard-view/<dashboard>): its data comes from
cauldron.api.synapse.dashboard_data."""
