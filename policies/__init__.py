"""Policy zoo (one folder per family behind one Policy protocol).

Importing this package registers every family with ``robot_learning.policy.POLICIES``; heavy
dependencies (torchvision, diffusers) are imported only when a policy that needs them is built.
"""

from policies import diffusion, flow, meanflow, reward_classifier, vla  # noqa: F401  (imports register the families)
