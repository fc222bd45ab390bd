"""Association of DiaSources with SSObjects and DiaObjects: candidates, scores, one-to-one assignment."""
