"""Loading builds the model on the meta device; no op there may import torch._dynamo (1.5 s of every
command's start-up: meta ops with Python decompositions -- cat, arange, normal_ -- import it)."""
import subprocess
import sys

CODE = """
import sys
from mediaformers.tasks.loading import load_model
for folder in sys.argv[1:]:
    load_model(folder)
print("torch._dynamo" in sys.modules)
"""


def test_loading_every_family_leaves_torch_dynamo_unimported(ckpts):
    run = subprocess.run([sys.executable, "-c", CODE, *map(str, ckpts.values())], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False"], f"loading {sorted(ckpts)} imported torch._dynamo"
