"""Config group `experiment`: presets such as `smoke`."""
