"""Module-API symbols: ``get_symbol(num_classes, multiplier, **kwargs)`` per network."""
