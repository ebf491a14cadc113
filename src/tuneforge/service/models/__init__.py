"""Model use-cases: the registry, imports, publish, export, evaluation and deployments."""
