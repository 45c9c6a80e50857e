"""Parameter files shipped with the metrics (fitted NIQE / BRISQUE-feature pristine models)."""
