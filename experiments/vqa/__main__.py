"""``python -m experiments.vqa``: see main.py and config.py."""

from absl import flags

from experiments import launch
from experiments.vqa import main as vqa_main

# So that --help lists --workdir, --config and the distributed flags
# (launch.training_binary defines them all).
flags.adopt_module_key_flags(launch)

vqa_main.main()
