"""Planning, pure: names -> run configs (resolve), protocol and hashing (configs), pair checks
(compat), pairs and jobs of episodes still to run (jobs). Nothing here runs or stores."""
