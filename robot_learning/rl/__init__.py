"""Off-policy RL fine-tuning (``robot-learning finetune``): building blocks and algorithms.

Modules, each with one job: :mod:`.replay` (preallocated replay buffer, n-step returns),
:mod:`.demos` (a LeRobotDataset as a replay buffer), :mod:`.sampling` (symmetric 50/50
demo/online batches), :mod:`.collector` (N environments in lockstep into the buffer),
:mod:`.networks` (MLP actors and Q ensembles), :mod:`.algos` (the ``ALGOS`` registry: ``sac``,
``td3``), :mod:`.learner_state` (pickle-free save/resume of the whole learner), :mod:`.curves`
(TensorBoard + PNG learning curves), :mod:`.config` and :mod:`.loop` (the shared training loop).
"""

from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.loop import FinetuneResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune"]
