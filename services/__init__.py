"""The detector, tracker and evaluator services, and the gateway that composes them."""
