"""Config group `task`: the published HRM recipes."""
