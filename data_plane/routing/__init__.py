"""Pure routing core of the data plane: error classifier, key cooldowns and the failover engine."""
