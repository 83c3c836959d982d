"""Operations: settings, logging, metrics, health."""
