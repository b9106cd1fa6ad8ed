"""Reliability suite: real faults (killed workers, killed/paused Redis) with recorded figures."""
