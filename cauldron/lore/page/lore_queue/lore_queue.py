"""Lore Embedding Queue (Desk page /app/lore-queue): cauldron.api.lore.pipeline_status, retry, embed_all."""
