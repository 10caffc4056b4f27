"""Bridges to other systems. Each submodule imports its system only when used (``mediaformers.integrations.ray``
needs ``pip install 'mediaformers[ray]'``)."""
