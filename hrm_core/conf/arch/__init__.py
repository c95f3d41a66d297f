"""Config group `arch`: model architectures."""
