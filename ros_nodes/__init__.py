"""ROS 2 nodes (policy server, sim-as-robot bridge, recorder); filled by later issues."""
