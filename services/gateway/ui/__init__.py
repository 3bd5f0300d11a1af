"""The /ui dashboard: server-rendered pages (Jinja2) with a little JavaScript that polls the JSON API."""
