"""What the cache saved and cost: per-process counters flushed to Redis, the :class:`Stats` they
add up to and its renderings, token counts, prices and the savings of one hit."""
