"""AWS schedule expressions: grammar, fire times, English descriptions (``expressions`` is the entry point)."""
