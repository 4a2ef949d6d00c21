"""Lore Search (Desk page /app/lore-search): its data comes from cauldron.api.lore.search."""
