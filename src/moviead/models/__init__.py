"""Model components (plain torch): the PME Q-Former, adapters, selection modules and decoders."""
