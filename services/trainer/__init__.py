"""Training jobs (composition): the doctor gate, per-epoch validation with the evaluator, job records, the
`train` CLI, the `tracker.train` task and `/train` routes. Only the gateway imports this package."""
