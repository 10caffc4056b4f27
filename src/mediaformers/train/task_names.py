"""The names of what ``train`` can train and the data field each reads (no torch: the CLI's parser
lists them)."""

TASKS = ("classification", "pretraining", "contrastive")  # what ``Recipe.task`` names (besides "auto")
NEEDS = {"classification": "label", "pretraining": None, "contrastive": "caption"}  # the data field each reads
