"""Planning, pure: names -> run configs (resolve), typed env options with their defaults
(options), protocol and hashing (configs), pair checks (compat), pairs and jobs of episodes
still to run (jobs). Nothing here runs or stores, and the registry and catalog are only read."""
