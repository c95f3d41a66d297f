"""Config group `arch_experiment`: an experiment preset for a given architecture (X_Y)."""
