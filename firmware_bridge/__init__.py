"""Both ends of the locker link: the backend bridge, the locker agent and the simulator."""
