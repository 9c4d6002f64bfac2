"""Real robots, cameras and teleop devices behind the same contract as sim/; filled by later issues."""
