"""How work runs: the scheduler, the executor, background jobs, processes and event ingestion."""
