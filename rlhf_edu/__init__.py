"""rlhf_edu: the tested package behind the RLHF-with-PPO course.

One module per concept, each taught by a notebook in ``notebooks/``:

- ``corpus``, ``judge``: the synthetic review world and its rule-based gold judge
- ``generation``: sampling responses and their per-token log-probs (lesson 01)
- ``rewards``: the Bradley-Terry pairwise loss (lesson 02)
- ``ppo``: ratios, the clipped surrogate, policy and value losses (lessons 04, 07)
- ``kl``: KL estimators, KL-shaped rewards, adaptive beta (lesson 05)
- ``advantages``: masked statistics, whitening, GAE (lesson 06)
- ``beyond``: DPO and group advantages for GRPO / RLOO (lesson 08)
- ``presets``: ``load_preset`` for the offline ``tiny`` world and ``gpt2-imdb``
"""

__version__ = "0.1.0"
