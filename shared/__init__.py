"""Schemas, file formats, run store, settings and the Celery app shared by every motpipe service."""
