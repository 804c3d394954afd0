"""Active labelling: cold-start retrieval, selection strategies, Label Studio interchange, the noise check.

Cold start finds candidates for each violating category by similarity to a handful of seed
images (``retrieval``); selection strategies pick what reviewers should label next; Label
Studio interchange turns candidates into import tasks and reads the reviewers' answers back
(``labelstudio``); the noise check flags labels the model disagrees with. The submodules are
imported explicitly by their callers, so importing this package stays cheap.
"""
