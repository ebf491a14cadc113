"""Stored, named graders (OpenAI's grader schema): create, read, update, delete, validate, try them on samples, and
resolve the names a training or evaluation request gives into grader objects."""
