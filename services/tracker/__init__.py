"""Tracking: det_db (+ frames) in, MOT tracks out."""
