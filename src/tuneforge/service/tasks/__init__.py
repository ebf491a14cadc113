"""Task use-cases: create (through the planner), list, follow, stop, copy, resume, delete; experiments."""
