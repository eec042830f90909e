"""HTTP: the blueprints, their schemas and request guards."""
