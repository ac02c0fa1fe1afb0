"""The paper's experiments as commands: `nmt experiment table3`."""
