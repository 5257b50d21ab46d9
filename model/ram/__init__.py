"""The official Recognize Anything (RAM), RAM++ and Tag2Text models as families of tagmill's registry.

`config.py` holds their typed architecture, `swin.py` the image encoder (timm's Swin Transformer),
`head.py` the BERT-style cross-attention tagging head, `families.py` the three models,
`preprocess.py` the official inference's preprocessing, `keys.py` the correspondence between
tagmill's module names and the official checkpoints' keys, and `importer.py` (with `infer.py`)
turns an official checkpoint into a tagmill model folder.
"""
