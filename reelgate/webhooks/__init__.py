"""Webhooks: the address rules of ``webhookUrl``, the keys' signing secrets, and the dispatcher
that delivers the outbox's ``TASK_END`` events (``reelgate.store.outbox``)."""
