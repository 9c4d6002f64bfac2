"""``python -m robot_learning.cli`` == the ``robot-learning`` console script."""

import sys

from robot_learning.cli import main

sys.exit(main())
