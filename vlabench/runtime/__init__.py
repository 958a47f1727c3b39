"""Running episodes in this process: the rollout loop, action schedules (inference modes), the
adapter pipeline of a pair, and episode videos."""
