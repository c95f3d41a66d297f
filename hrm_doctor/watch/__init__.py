"""`hrm-doctor watch`: follow runs as they grow, feed the one rule engine, write findings once."""
