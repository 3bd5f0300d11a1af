"""HTTP plumbing every service app shares: app factory, auth, errors, uploads, run routes."""
