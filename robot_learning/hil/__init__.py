"""Human-in-the-loop RL (HIL-SERL, RLIF): a learner and actors over an authenticated gRPC transport.

* :mod:`.transport`: the wire (protobuf, token, TLS/mTLS, limits); :mod:`.messages`: the
  transition schema; :mod:`.contract`: what actor and learner agree on.
* :mod:`.learner` (``robot-learning hil learner``): RLPD on online + offline buffers
  (:mod:`.storage`), weights published to actors (:mod:`.service`).
* :mod:`.actor` (``robot-learning hil actor``): the policy on a task with a teleop device ready to
  intervene. :mod:`.local` runs one learner and N actors on this machine
  (``robot-learning finetune algo=hil_serl``).
"""
