"""rlplug-arm: the tutorial's two-link robot arm as a gymnasium env, shipped as an rlplug env
plugin (ids ``RlplugArm-v0`` and ``RlplugArmHard-v0``; presets ``env=arm``, ``env=arm_hard``,
``experiment=arm``, ``experiment=arm_hard``)."""
