"""Where the repository's own folders are, named once.

The study, the sweep and the measurements read configs from
``experiments/configs`` and publish into ``docs/``, ``results/`` and the
README of the checkout that holds this package (an editable install, as the
README's install command makes).
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO_ROOT, 'experiments', 'configs')
DOCS_DIR = os.path.join(REPO_ROOT, 'docs')
RESULTS_DIR = os.path.join(REPO_ROOT, 'results')
