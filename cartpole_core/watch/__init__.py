"""Watching what an agent learned: rollouts, rgb_array rendering and video, inspection, robustness."""
