"""Domain model: statuses, ids, errors, pricing and the model catalogue. No I/O here."""
