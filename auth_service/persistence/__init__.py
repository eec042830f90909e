"""Models, engines and the queries on the hot paths."""
