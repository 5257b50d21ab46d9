"""The configs that ship with tagmill: run configs (YAML), model and CLIP architectures (JSON), training and
rounds configs. This folder is their one home; the wheel carries it as the package data of `tagmill.configs`."""
