"""Config group `arch_task`: a task's recipe for a given architecture (`task=X arch=Y` loads X_Y)."""
