"""Pipeline steps, one module each, registered in :mod:`crmkit.pipeline._registry`."""
