"""The synthetic world: captioned images whose true tags are known."""
