"""Each stage's settings, defined once: name, type, default, range or choices and help.

:mod:`.fields` is the mechanism (a setting is a dataclass field; one validator; argparse
options made from the fields); :mod:`.extract`, :mod:`.evaluate` and :mod:`.predict` hold the
stages' models. The commands, the stage functions' defaults and (checked by
``tests/test_settings_defaults.py``) ``config/schema.yaml`` take their defaults from here.
Imports no stage, numpy, scipy or torch.
"""
