"""Aether Approval Inbox (Desk page /app/aether-approval-inbox): cauldron.api.aether.inbox and respond."""
