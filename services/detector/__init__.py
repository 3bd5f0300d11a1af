"""Detection: per-frame boxes written as a MOTRv2 det_db."""
