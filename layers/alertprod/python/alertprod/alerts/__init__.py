"""Alert packets (Rubin schema), serialisation, publishing with claim-check, and the consumer client."""
