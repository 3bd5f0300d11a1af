"""Readers and writers for the file formats motpipe exchanges with users' tools."""
