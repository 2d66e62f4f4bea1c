"""DQN — written next."""

def train(config, run):
    raise NotImplementedError
