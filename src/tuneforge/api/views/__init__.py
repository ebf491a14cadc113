"""The response models of the native API for the resources whose services hand back plain dicts (the console reads
those dicts too): each route validates the service's dict into its view, so OpenAPI documents the real body."""
