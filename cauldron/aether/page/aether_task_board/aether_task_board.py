"""Aether Task Board (Desk page /app/aether-task-board): cauldron.api.aether.board, a column per status."""
